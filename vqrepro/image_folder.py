"""Image folders (CelebA, FFHQ, CelebA-HQ, ImageNet): their files, their fingerprint, their check.

Three views of one folder, from cheap to complete:

* ``list_images``: the image files preparation splits (relative paths, sorted);
* ``fingerprint``: a hash of those paths with each file's size and modification time, from
  ``stat`` alone, so Snakemake can afford it every time it plans (see workflow/rules/data.smk);
* ``check_images``: every file read, hashed (SHA-256 of its bytes) and decoded exactly as
  training decodes it, once, when the data set is prepared.

Imports nothing heavy at module level: the Snakefile imports it to plan.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}

# The key under which the Snakefile hands the fingerprint to the prepare_data job (inside --settings).
FINGERPRINT_SETTING = "folder_fingerprint"


class UnreadableImagesError(RuntimeError):
    """Some files of an image folder cannot be read or decoded."""


def _split_folders(root: Path, settings: dict) -> list[Path]:
    if settings.get("train_dir") and settings.get("test_dir"):
        return [root / settings["train_dir"], root / settings["test_dir"]]
    return [root]


def _image_entries(folder: Path):
    """os.DirEntry of every image file under ``folder`` (any depth; symlinked folders not followed, as rglob)."""
    pending = [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                        yield entry
        except FileNotFoundError:  # a split folder that does not exist holds no images
            continue


def list_images(folder: Path, root: Path) -> list[str]:
    """Paths relative to ``root`` of the image files under ``folder``, sorted."""
    prefix = len(str(root)) + 1
    return sorted(entry.path[prefix:] for entry in _image_entries(folder))


def fingerprint(settings: dict) -> str | None:
    """Hash of every image's relative path, size and modification time; None if the root is not a folder.

    Reads no pixels: about 6 microseconds a file on a local disk (some 8 s for ImageNet's 1.28M).
    An edit changes the size or the modification time; so does a copy that keeps no times
    (``cp`` without ``-p``), which then re-prepares identical data.
    """
    root = Path(settings.get("root") or "")
    if not settings.get("root") or not root.is_dir():
        return None
    prefix = len(str(root)) + 1
    listing = []
    for folder in _split_folders(root, settings):
        for entry in _image_entries(folder):
            try:
                stat = entry.stat()
                listing.append(f"{entry.path[prefix:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
            except OSError:  # e.g. a dangling link: preparation names it
                listing.append(f"{entry.path[prefix:]}\0unreadable\n")
    digest = hashlib.sha256()
    for line in sorted(listing):
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def with_fingerprint(settings: dict, info_path: str | Path) -> dict:
    """The prepare_data job's settings as the Snakefile passes them: an image folder's carry its fingerprint.

    Other sources come back unchanged, so the params Snakemake recorded for them stay the same.
    """
    if settings.get("source") != "image_folder":
        return settings
    return {**settings, FINGERPRINT_SETTING: _planned_fingerprint(json.dumps(settings, sort_keys=True), str(info_path))}


@functools.lru_cache(maxsize=None)  # Snakemake asks for a job's params more than once while it plans
def _planned_fingerprint(settings_json: str, info_path: str) -> str:
    found = fingerprint(json.loads(settings_json))
    if found is not None:
        return found
    # The root is not on this machine (a clone with the data pulled from DVC, say): there is
    # nothing to compare, so the prepared data stands; with none, prepare_data says what to set.
    info = Path(info_path)
    recorded = json.loads(info.read_text()).get("folder", {}) if info.exists() else {}
    return recorded.get("fingerprint") or "root not found"


def decode(data: bytes, size: int):
    """Centre crop and bicubic resize to ``size`` x ``size``: the uint8 RGB array (H, W, 3) training sees."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")  # decodes the whole file: a truncated one fails here
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return np.asarray(img).copy()


def describe_failure(err: Exception) -> str:
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def check_images(root: Path, files: list[str], size: int) -> list[bytes]:
    """SHA-256 digest of each file's bytes, after decoding each one as training will.

    Training reads these files lazily, so this is the one place every one of them is read:
    it tries them all and reports every bad one in a single error.
    """
    digests, failures = [], []
    for name in files:
        try:
            data = (root / name).read_bytes()
            decode(data, size)
        except Exception as err:  # any failure to read or decode makes the file unusable (PIL raises many kinds)
            failures.append((name, describe_failure(err)))
            digests.append(b"")
            continue
        digests.append(hashlib.sha256(data).digest())
    if failures:
        more = ""
        if len(failures) > 1:  # the full list goes to the job's log; the error names the first
            for name, why in failures:
                print(f"unreadable image: {root / name}: {why}", file=sys.stderr)
            more = f" and {len(failures) - 1} more (listed above in the log)"
        first, why = failures[0]
        raise UnreadableImagesError(
            f"{len(failures)} of {len(files)} images cannot be read: {root / first} ({why}){more}; "
            "remove or replace each such file under the data set's root, then prepare the data set again"
        )
    return digests


def content_hash(files: list[str], digests: list[bytes]) -> str:
    """One SHA-256 over every file's relative path and content digest."""
    digest = hashlib.sha256()
    for name, file_digest in sorted(zip(files, digests)):
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + file_digest)
    return digest.hexdigest()
