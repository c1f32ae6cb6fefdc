"""Data preparation: seeded fixed splits, disjoint photographs, clear errors for missing local data."""
import json

import numpy as np
import pytest
import torch
import yaml

from vqrepro import data
from vqrepro.errors import DataSourceError
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


# ------------------------------------------------------------------ image folders: damaged and edited files


def noise_folder(root, count=10, shape=(24, 20)):
    """A folder of small random-noise PNGs, nested one level; returns the image-folder settings."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(root / "sub" / f"{i}.png")
    return {"source": "image_folder", "root": str(root), "size": 16, "test_fraction": 0.2, "seed": 0}


def repaint(path, value=(255, 0, 0)):
    """Change one pixel of an image file in place (same size, same format)."""
    from PIL import Image

    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB")).copy()
    pixels[0, 0] = value
    Image.fromarray(pixels).save(path)


def test_a_truncated_image_stops_preparation_with_its_name(tmp_path):
    settings = noise_folder(tmp_path / "faces")
    broken = tmp_path / "faces" / "sub" / "3.png"
    broken.write_bytes(broken.read_bytes()[:-200])  # as a copy cut short leaves it
    with pytest.raises(data.DataSourceError) as err:
        data.prepare("faces", settings, tmp_path / "out")
    message = str(err.value)
    assert str(broken) in message and "1 of 10 images cannot be read" in message
    assert "truncated" in message and "remove or replace" in message and "datasets.faces.root" in message
    assert "\n" not in message
    assert not (tmp_path / "out" / "train.pt").exists()


def test_every_bad_image_is_reported_at_once(tmp_path, capsys):
    settings = noise_folder(tmp_path / "faces")
    for name in ("2.png", "7.png"):
        (tmp_path / "faces" / "sub" / name).write_bytes(b"not an image")
    with pytest.raises(data.DataSourceError, match=r"2 of 10 images cannot be read: .*2\.png .* and 1 more"):
        data.prepare("faces", settings, tmp_path / "out")
    log = capsys.readouterr().err
    assert "sub/2.png" in log and "sub/7.png" in log


def test_editing_an_image_changes_the_prepared_files(tmp_path):
    from vqrepro.io import sha256_file

    settings = noise_folder(tmp_path / "faces")
    before = data.prepare("faces", settings, tmp_path / "before")
    edited = data.load_split(tmp_path / "before", "train").files[0]
    repaint(tmp_path / "faces" / edited)
    after = data.prepare("faces", settings, tmp_path / "after")
    assert after["splits"]["train"]["sha256"] != before["splits"]["train"]["sha256"]  # train.pt holds the digests
    assert after["splits"]["test"]["sha256"] == before["splits"]["test"]["sha256"]  # the other split is untouched
    assert after["folder"]["content_sha256"] != before["folder"]["content_sha256"]
    assert sha256_file(tmp_path / "after" / "info.json") != sha256_file(tmp_path / "before" / "info.json")
    again = data.prepare("faces", settings, tmp_path / "again")
    assert again["splits"] == after["splits"]  # the same pixels: the same files


def test_an_image_edited_after_preparation_is_refused_when_read(tmp_path):
    settings = noise_folder(tmp_path / "faces")
    data.prepare("faces", settings, tmp_path / "out")
    split = data.load_split(tmp_path / "out", "train")
    split[1]  # readable as prepared
    repaint(tmp_path / "faces" / split.files[1])
    with pytest.raises(data.DataSourceError, match="has changed since .*train.pt was prepared"):
        split[1]


def test_editing_an_image_makes_snakemake_prepare_again_and_retrain(tmp_path, params):
    from test_workflow import planned_jobs, snakemake, tiny_params

    cfg = tiny_params(params)
    cfg["datasets"]["faces"] = noise_folder(tmp_path / "faces", count=20)
    cfg["training"]["faces_quick"] = dict(cfg["training"]["tiny"], steps=2, batch_size=4, log_every=1,
                                          checkpoint_every=1)
    cfg["studies"]["faces_study"] = {"title": "Faces", "dataset": "faces", "model": "tiny", "training": "faces_quick",
                                     "quantizers": ["vq"], "codebook_sizes": [8], "code_dims": [4], "seeds": [0]}
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(cfg))
    targets = ["runs/faces_study/faces/vq/K8_D4/seed0/ckpt.pt", "data/digits/info.json"]
    built = snakemake(work, "--cores", "1", *targets)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert planned_jobs(snakemake(work, "-n", *targets)) == {}  # up to date

    settings = json.loads((work / "data/faces/info.json").read_text())["settings"]
    assert settings == cfg["datasets"]["faces"]  # the fingerprint steers Snakemake; it is no data setting
    repaint(tmp_path / "faces" / "sub" / "4.png")
    plan = snakemake(work, "-n", *targets)
    assert planned_jobs(plan) == {"prepare_data": 1, "train_tokenizer": 1, "read_tokenizer_run": 1}, plan.stdout  # faces only
    assert "dataset=faces" in plan.stdout and "dataset=digits" not in plan.stdout


# --------------------------------------------------------------------------- the papers' layouts (vqrepro.layouts)


@pytest.mark.parametrize("source", ["mnist", "fashion_mnist", "cifar10"])
def test_standin_files_in_a_release_layout_prepare_when_declared_as_standins(tmp_path, source):
    from vqrepro import layouts

    layouts.write_standin(source, tmp_path / "root", {"train": 12, "test": 5})
    info = data.prepare(source, {"source": source, "root": str(tmp_path / "root"), "verify_release": False},
                        tmp_path / "out")
    channels, size = (3, 32) if source == "cifar10" else (1, 28)
    assert {s: e["count"] for s, e in info["splits"].items()} == {"train": 12, "test": 5}
    assert info["splits"]["train"]["shape"] == [channels, size, size]
    split = data.load_split(tmp_path / "out", "train")
    assert split.batch(torch.arange(3)).shape == (3, channels, size, size)


@pytest.mark.parametrize("source, expected", [
    ("cifar10", "is not the published release's file (MD5"),
    ("mnist", "holds 12 images; the published release has 60000"),
])
def test_the_release_is_verified_with_our_own_error_and_no_download_hint(tmp_path, source, expected):
    from vqrepro import layouts

    layouts.write_standin(source, tmp_path / "root", {"train": 12, "test": 5})
    with pytest.raises(DataSourceError) as err:
        data.prepare(source, {"source": source, "root": str(tmp_path / "root")}, tmp_path / "out")
    message = str(err.value)
    assert expected in message and f"set datasets.{source}.verify_release: false" in message
    assert "download" not in message.lower()


def test_a_malformed_idx_file_is_refused_naming_it(tmp_path):
    from vqrepro import layouts

    layouts.write_standin("mnist", tmp_path, {"train": 4, "test": 4})
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])  # one label short of the header's count
    with pytest.raises(DataSourceError, match=r"t10k-labels-idx1-ubyte: the header says \(4,\) bytes of data but the file holds 3"):
        data.prepare("mnist", {"source": "mnist", "root": str(tmp_path), "verify_release": False}, tmp_path / "out")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8b gzip")
    with pytest.raises(DataSourceError, match="not an uncompressed IDX file of images .* must be extracted first"):
        data.prepare("mnist", {"source": "mnist", "root": str(tmp_path), "verify_release": False}, tmp_path / "out")
