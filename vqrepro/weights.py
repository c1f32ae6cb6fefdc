"""Pretrained weights for LPIPS and rFID: where they are looked for, never downloaded.

Each weight file is looked for at the path set in params.yaml (``weights.<name>``)
and otherwise where torch keeps downloaded checkpoints
(``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``).
A metric whose weights are absent is recorded as missing with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    used_for: str


WEIGHT_FILES = {
    "inception": WeightFile("inception", "weights-inception-2015-12-05-6726825d.pth", "rFID and gFID (torch-fidelity inception-v3-compat)"),
    "lpips_alex": WeightFile("lpips_alex", "alexnet-owt-7be5be79.pth", "LPIPS (AlexNet backbone, torchvision)"),
    "lpips_vgg": WeightFile("lpips_vgg", "vgg16-397923af.pth", "LPIPS with net=vgg (VGG16 backbone, torchvision)"),
}


def default_location(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[name].filename


def find(name: str, configured: dict | None = None) -> tuple[Path | None, str]:
    """Return (path, "") if the weight file is present, else (None, reason)."""
    configured = configured or {}
    explicit = configured.get(name)
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return path, ""
        return None, f"weights.{name} in params.yaml points to {path}, which does not exist"
    path = default_location(name)
    if path.is_file():
        return path, ""
    return None, (
        f"{WEIGHT_FILES[name].filename} is not in torch's checkpoint folder and weights.{name} is not set "
        "(nothing is downloaded; `python -m vqrepro weights` says where it goes)"
    )


def report(configured: dict | None = None) -> list[dict]:
    rows = []
    for name, wf in WEIGHT_FILES.items():
        path, reason = find(name, configured)
        rows.append({
            "name": name,
            "used_for": wf.used_for,
            "present": path is not None,
            "path": str(path) if path else str(default_location(name)),
            "reason": reason,
        })
    return rows
