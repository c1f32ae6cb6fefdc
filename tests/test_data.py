"""Data preparation: seeded fixed splits, disjoint photographs, clear errors for missing local data."""
import pytest
import torch

from vqrepro import data
from vqrepro.io import CorruptFileError


def test_digits_split_is_seeded_stratified_and_complete(tmp_path, params):
    settings = params["datasets"]["digits"]
    info = data.prepare("digits", settings, tmp_path / "a")
    again = data.prepare("digits", settings, tmp_path / "b")
    assert info["splits"]["train"]["count"] + info["splits"]["test"]["count"] == 1797
    assert info["splits"]["test"]["count"] == 360
    assert info["splits"]["train"]["sha256"] == again["splits"]["train"]["sha256"]
    test = data.load_split(tmp_path / "a", "test")
    assert test.shape == (1, 8, 8)
    assert torch.bincount(test.labels).min() >= 35  # every class present in the test split
    x = test[0]
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_photo_crops_come_from_disjoint_photographs(tmp_path, params):
    settings = dict(params["datasets"]["photo_crops"], crops_per_image=5)
    info = data.prepare("photo_crops", settings, tmp_path)
    assert not set(settings["train_images"]) & set(settings["test_images"])
    assert info["splits"]["train"]["count"] == 5 * len(settings["train_images"])
    assert info["splits"]["test"]["shape"] == [3, 32, 32]


def test_missing_local_data_names_the_setting(tmp_path):
    with pytest.raises(data.DataSourceError) as err:
        data.prepare("cifar10", {"source": "cifar10", "root": str(tmp_path / "nowhere")}, tmp_path / "out")
    assert "datasets.cifar10.root" in str(err.value)
    assert "cifar-10-batches-py" in str(err.value)


def test_image_folder_split_and_lazy_loading(tmp_path):
    from PIL import Image

    root = tmp_path / "faces"
    (root / "sub").mkdir(parents=True)
    for i in range(10):
        Image.new("RGB", (40, 30), color=(i * 20, 0, 0)).save(root / "sub" / f"{i}.png")
    settings = {"source": "image_folder", "root": str(root), "size": 16, "test_fraction": 0.2, "seed": 0}
    info = data.prepare("faces", settings, tmp_path / "out")
    assert (info["splits"]["train"]["count"], info["splits"]["test"]["count"]) == (8, 2)
    split = data.load_split(tmp_path / "out", "train")
    assert split.batch(torch.tensor([0, 1])).shape == (2, 3, 16, 16)


def test_corrupt_prepared_file_is_detected(tmp_path, params):
    data.prepare("digits", params["datasets"]["digits"], tmp_path)
    path = tmp_path / "train.pt"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="corrupt or truncated"):
        data.load_split(tmp_path, "train")


def test_batches_are_a_pure_function_of_seed_and_step():
    a = data.batch_indices(100, 32, seed=3, step=7)
    b = data.batch_indices(100, 32, seed=3, step=7)
    assert torch.equal(a, b)
    epoch = torch.cat([data.batch_indices(100, 25, seed=3, step=s) for s in range(4)])
    assert sorted(epoch.tolist()) == list(range(100))  # one epoch visits every item once


def test_iterated_batches_equal_the_pure_function_across_epochs():
    split = data.ImageSplit.__new__(data.ImageSplit)
    split.images, split.files = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1), None
    batches = list(data.iterate_batches(split, 8, seed=1, start=3, stop=20))
    for step, batch in zip(range(3, 20), batches):
        expected = data.batch_indices(50, 8, seed=1, step=step).float() / 255.0
        torch.testing.assert_close(batch.flatten(), expected)
