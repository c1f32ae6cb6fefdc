"""The papers' data sets in their published on-disk layouts: a reader and a stand-in writer for each.

Readers check what a file can show (its format, shapes and counts) and, where the release has
known checksums (CIFAR-10's python batches), that the files are the release's. Each failure is a
``DataSourceError`` naming the file and the setting to change; nothing here downloads, and no
message suggests it.

``verify_release`` (datasets.<name>.verify_release, default true) asks for the published release
itself: its checksums where known and its image counts. Stand-in files (``write_standin``, used by
the rehearsal of every paper config, vqrepro/rehearsal.py) are other files in the same layout: a
config that reads them says so with ``verify_release: false``, and info.json records it.

Layouts (torchvision's folder names, so that a copy torchvision downloaded elsewhere works as is):

- mnist / fashion_mnist: ``<root>/{MNIST,FashionMNIST}/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
  (uncompressed IDX files: a big-endian magic number 2051 for images or 2049 for labels, the sizes, the bytes);
- cifar10: ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (pickled dicts with
  ``data``: N x 3072 uint8, channel-major 32x32 RGB, and ``labels``);
- image folders (CelebA, FFHQ, CelebA-HQ, ImageNet): read by vqrepro.image_folder; ``write_standin``
  writes ``<root>/*.png``, or ``<root>/{train,val}/<class>/*.JPEG`` for ImageNet's layout.
"""
from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

from .errors import DataSourceError

IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_IMAGES, IDX_LABELS = 2051, 2049
RELEASE_COUNTS = {"mnist": {"train": 60000, "test": 10000}, "fashion_mnist": {"train": 60000, "test": 10000},
                  "cifar10": {"train": 50000, "test": 10000}}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# MD5 of each file of the CIFAR-10 python release (cs.toronto.edu/~kriz/cifar-10-python.tar.gz).
CIFAR_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
             "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}


def _refuse(name: str, message: str) -> DataSourceError:
    return DataSourceError(f"data set {name!r}: {message}")


def _release_note(name: str) -> str:
    return (f"if these are deliberately other files in the release's layout, set datasets.{name}.verify_release: "
            "false")


# --------------------------------------------------------------------------- MNIST and Fashion-MNIST (IDX)


def _read_idx(path: Path, magic: int, name: str) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _refuse(name, f"{path} is missing") from None
    dims = 3 if magic == IDX_IMAGES else 1
    header = 4 + 4 * dims
    if len(raw) < header or struct.unpack(">i", raw[:4])[0] != magic:
        kind = "images" if magic == IDX_IMAGES else "labels"
        raise _refuse(name, f"{path} is not an uncompressed IDX file of {kind} (magic number {magic} expected); "
                            "a .gz file must be extracted first")
    shape = struct.unpack(f">{dims}i", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise _refuse(name, f"{path}: the header says {shape} bytes of data but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_split(name: str, source: str, root: Path, split: str, verify_release: bool) -> dict:
    folder = root / IDX_FOLDERS[source] / "raw"
    images_file, labels_file = IDX_FILES[split]
    images = _read_idx(folder / images_file, IDX_IMAGES, name)
    labels = _read_idx(folder / labels_file, IDX_LABELS, name)
    if images.shape[1:] != (28, 28):
        raise _refuse(name, f"{folder / images_file}: images are {images.shape[1]}x{images.shape[2]}, not 28x28")
    if len(images) != len(labels):
        raise _refuse(name, f"{folder}: {len(images)} images in {images_file} but {len(labels)} labels in {labels_file}")
    expected = RELEASE_COUNTS[source][split]
    if verify_release and len(images) != expected:
        raise _refuse(name, f"{folder / images_file} holds {len(images)} images; the published release has "
                            f"{expected}; {_release_note(name)}")
    return {"images": images[:, None].copy(), "labels": labels.astype(np.int64)}


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    path.write_bytes(struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes())


# --------------------------------------------------------------------------- CIFAR-10 (python pickles)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _read_cifar_batch(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")  # the release pickles bytes keys (Python 2)
    except FileNotFoundError:
        raise _refuse(name, f"{path} is missing") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise _refuse(name, f"{path} is not a CIFAR-10 python batch ({err})") from None
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()} \
        if isinstance(batch, dict) else {}
    data, labels = batch.get("data"), batch.get("labels")
    if data is None or labels is None:
        raise _refuse(name, f"{path} is not a CIFAR-10 python batch (no 'data' and 'labels' entries)")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise _refuse(name, f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; expected uint8 "
                            "(N, 3072) with N labels")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def read_cifar_split(name: str, root: Path, split: str, verify_release: bool) -> dict:
    folder = root / CIFAR_FOLDER
    if verify_release:
        for file in CIFAR_BATCHES[split] + ["batches.meta"]:
            path = folder / file
            if not path.exists():
                raise _refuse(name, f"{path} is missing; expected the CIFAR-10 python release under "
                                    f"datasets.{name}.root ({root})")
            if _md5(path) != CIFAR_MD5[file]:
                raise _refuse(name, f"{path} is not the published release's file (MD5 {_md5(path)}, release "
                                    f"{CIFAR_MD5[file]}): replace it with the release's; {_release_note(name)}")
    parts = [_read_cifar_batch(folder / file, name) for file in CIFAR_BATCHES[split]]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return {"images": images, "labels": labels}


# --------------------------------------------------------------------------- stand-ins for the rehearsal


def _random_images(rng: np.random.Generator, count: int, channels: int, size: int) -> np.ndarray:
    """Smooth random images (a coarse grid upsampled), so that the tokenizers have structure to learn."""
    coarse = rng.integers(0, 256, size=(count, channels, 4, 4)).astype(np.float32)
    repeat = -(-size // 4)
    return np.kron(coarse, np.ones((1, 1, repeat, repeat), np.float32))[:, :, :size, :size].astype(np.uint8)


def write_standin(layout: str, root: str | Path, counts: dict[str, int], size: int = 256, classes: int = 2,
                  seed: int = 0, split_dirs: dict[str, str] | None = None) -> Path:
    """Stand-in files in a paper data set's on-disk layout (``layout``: mnist, fashion_mnist, cifar10,
    image_folder, or imagenet: ``<root>/<split_dirs[split]>/<class>/*.JPEG``, by default train/ and val/),
    ``counts[split]`` images each. Not the release: read them with ``verify_release: false``."""
    from PIL import Image

    root, rng = Path(root), np.random.default_rng(seed)
    if layout in IDX_FOLDERS:
        folder = root / IDX_FOLDERS[layout] / "raw"
        folder.mkdir(parents=True, exist_ok=True)
        for split, (images_file, labels_file) in IDX_FILES.items():
            _write_idx(folder / images_file, _random_images(rng, counts[split], 1, 28)[:, 0], IDX_IMAGES)
            _write_idx(folder / labels_file, np.arange(counts[split]) % 10, IDX_LABELS)
    elif layout == "cifar10":
        folder = root / CIFAR_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for split, files in CIFAR_BATCHES.items():
            for i, file in enumerate(files):
                n = counts[split] // len(files) + (i < counts[split] % len(files))
                batch = {b"data": _random_images(rng, n, 3, 32).reshape(n, -1), b"labels": list(np.arange(n) % 10),
                         b"batch_label": file.encode()}
                with (folder / file).open("wb") as handle:
                    pickle.dump(batch, handle)
        with (folder / "batches.meta").open("wb") as handle:
            pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    elif layout in ("image_folder", "imagenet"):
        split_dirs = split_dirs or {"train": "train", "test": "val"}
        for split, count in counts.items():
            for i, image in enumerate(_random_images(rng, count, 3, size)):
                if layout == "imagenet":  # <root>/{train,val}/<class>/<image>.JPEG
                    path = root / split_dirs[split] / f"n{i % classes:08d}" / f"{split}_{i}.JPEG"
                else:
                    path = root / f"{split}_{i:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image.transpose(1, 2, 0)).save(path, format="JPEG" if layout == "imagenet" else "PNG")
    else:
        raise ValueError(f"unknown layout {layout!r}; known: mnist, fashion_mnist, cifar10, image_folder, imagenet")
    return root
