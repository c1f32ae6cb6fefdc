"""File helpers shared by every job: atomic writes and checksummed tensors.

A job writes each file to a temporary name in the same folder and renames it into
place, so a killed job leaves the old file or the new one, never half of one.
Tensor files carry a SHA-256 sidecar (``<file>.sha256``) that is checked before
loading; files are loaded with ``weights_only=True`` and never unpickled freely.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any



from .errors import CorruptFileError  # noqa: E402  (re-exported: vqrepro.io.CorruptFileError)


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    _atomic(Path(path), lambda handle: handle.write(data))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_tensors(path: str | Path, obj: dict) -> str:
    """Save a dict of tensors and plain values atomically; write its checksum beside it."""
    import torch  # here, not at the top: report verbs write JSON and text without paying for torch

    path = Path(path)
    _atomic(path, lambda handle: torch.save(obj, handle))
    digest = sha256_file(path)
    write_text(path.with_name(path.name + ".sha256"), digest + "\n")
    return digest


def load_tensors(path: str | Path, map_location="cpu") -> dict:
    """Load a file written by ``save_tensors`` after checking its checksum."""
    check_checksum(path)
    return _load_tensors_only(Path(path), map_location)


def check_checksum(path: str | Path) -> None:
    """Refuse a file whose SHA-256 sidecar (written by ``save_tensors``) is missing or does not match."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not sidecar.exists():
        raise CorruptFileError(f"{path} has no checksum file {sidecar.name}; it was not written by vqrepro, delete it and re-run")
    expected = sidecar.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptFileError(
            f"{path} is corrupt or truncated (sha256 {actual[:12]}... != recorded {expected[:12]}...); "
            "delete it (and its .sha256) and re-run the job that writes it"
        )


def _not_ours(path: Path, why: str) -> CorruptFileError:
    # One line, and no word about other ways of loading it: a file that fails here may carry code.
    return CorruptFileError(f"{path} is not a vqrepro tensor file ({why}); "
                            "delete it (and its .sha256) and re-run the job that writes it")


def _load_tensors_only(path: Path, map_location) -> dict:
    """torch.load with weights_only=True, its refusals turned into CorruptFileError.

    A matching sidecar only says the file is the one that was checksummed, not that vqrepro
    wrote it: a sidecar is easy to recompute for a truncated, empty or crafted file.
    """
    # save_tensors always writes torch's zip format; anything else (empty, cut short, a bare
    # pickle) is refused before torch sees it, which also spares torch's warnings about it.
    if not zipfile.is_zipfile(path):
        raise _not_ours(path, "it is empty, truncated or in another format")
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's text here advises turning the safety off; never pass it on
        raise _not_ours(path, "it holds objects other than tensors and plain values, which are never loaded") from None
    except (EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise _not_ours(path, f"its archive is damaged: {type(err).__name__}") from None
    except RuntimeError as err:
        if "PytorchStreamReader" not in str(err):  # e.g. a CUDA map_location on a CPU-only machine: not the file's fault
            raise
        raise _not_ours(path, "its archive is damaged") from None
