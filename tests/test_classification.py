"""Classification with a VQ bottleneck through the real training loop (STE paper Tables 1, 2, 10 at mini scale)."""
import pytest
import torch

from vqrepro import data
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.io import load_tensors
from vqrepro.train import train_tokenizer


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("digits")
    data.prepare("digits", params["datasets"]["digits"], path)
    return path


def settings(params, preset=None, steps=150):
    """A classifier run; by default plain VQ (the loop under test, not a reproduction's preset, which follows
    the paper's facts: Table 2's cls_vq starts from k-means)."""
    return {
        "task": "classification",
        "dataset": "digits",
        "quantizer": {"method": "vq"} if preset is None else dict(params["quantizers"][preset]),
        "model": dict(params["models"]["digits_vq_classifier"]),
        "training": dict(params["training"]["digits_classify"], steps=steps, log_every=25, checkpoint_every=50),
        "codebook_size": 64,
        "code_dim": 8,
        "seed": 0,
    }


def test_a_vq_classifier_learns_digits_and_reports_accuracy_and_usage(params, digits_dir, tmp_path):
    ckpt = train_tokenizer(settings(params), digits_dir, tmp_path / "run")
    assert load_tensors(ckpt)["num_classes"] == 10
    result = evaluate_tokenizer(ckpt, digits_dir, tmp_path / "metrics.json", {"batch_size": 128})
    metrics = result["metrics"]
    assert set(metrics) == {"accuracy", "usage", "perplexity", "usage_train", "perplexity_train"}
    assert metrics["accuracy"] > 0.5  # chance is 0.1; 150 steps of a small CNN
    assert 0 < metrics["usage"] <= 1 and metrics["perplexity"] >= 1
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,xent,")


def test_outer_steps_split_each_batch_into_that_many_task_steps(params, digits_dir, tmp_path, monkeypatch):
    calls = []
    original = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        calls.append(len(self.param_groups[0]["params"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    train_tokenizer(settings(params, "cls_alt_2_2", steps=6), digits_dir, tmp_path / "run")
    whole_model = max(calls)
    assert calls.count(whole_model) == 6 * 2  # two task steps per batch
    assert len(calls) - calls.count(whole_model) == 6 * 2  # two codebook-only inner steps per batch


def test_image_folder_classes_become_labels(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = tmp_path / "root" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (10, 12), (i * 50, 0, 0)).save(folder / f"{i}.png")
    settings_ = {"source": "image_folder", "root": str(tmp_path / "root"), "size": 8, "train_dir": "train", "test_dir": "val"}
    data.prepare("folder", settings_, tmp_path / "prepared")
    split = data.load_split(tmp_path / "prepared", "train")
    assert split.labels.tolist() == [0, 0, 1, 1]
    images, labels = next(data.iterate_batches(split, 2, 0, 0, 1, with_labels=True))
    assert images.shape == (2, 3, 8, 8) and labels.shape == (2,)
