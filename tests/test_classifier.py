"""The pipeline's own feature classifier learns the digits."""
from vqrepro import data
from vqrepro.classifier import train_classifier


def test_feature_classifier_learns_digits(tmp_path, params):
    data.prepare("digits", params["datasets"]["digits"], tmp_path / "digits")
    settings = dict(params["classifiers"]["digits_cnn"], steps=300)
    report = train_classifier(settings, tmp_path / "digits", tmp_path / "clf" / "classifier.pt")
    assert report["test_accuracy"] > 0.9
    assert (tmp_path / "clf" / "classifier_metrics.json").exists()
