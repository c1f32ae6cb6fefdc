"""What every job does the same way: threads, device, seeding, provenance."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import subprocess
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def configure(threads: int, seed: int, device: str = "auto") -> torch.device:
    """Set torch's thread count (so ``--cores N`` never oversubscribes), seeds and the device.

    On CUDA, deterministic kernels are requested so that a seed fixes the result
    there too (docs/benchmarks.md records what this costs).
    """
    torch.set_num_threads(max(1, threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS first starts
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


@contextmanager
def random_state_kept():
    """Run a block (a measurement or an evaluation in the middle of training) without moving any
    random state: Python's, NumPy's and torch's (CPU and CUDA). A run that measures along the way
    then trains exactly as one that does not, which is what lets studies share runs (vqrepro/sharing.py)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def provenance(settings: dict, device: torch.device, wall_seconds: float) -> dict:
    versions = {}
    for package in ("vqrepro", "torch", "torchvision", "numpy", "lpips", "torch-fidelity"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "versions": versions,
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        # uncommitted changes to the package itself make the commit alone insufficient
        "git_dirty": bool(_git("status", "--porcelain", "--", ".")) if _git("rev-parse", "HEAD") else None,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        # what decides the floats on a CPU: the kernels' instruction set (pinned by the CLI) and the processor
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "processor": _cpu_model(),
        "wall_seconds": round(wall_seconds, 2),
    }
