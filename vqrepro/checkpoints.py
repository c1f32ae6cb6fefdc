"""A run's saved state: the checkpoint a finished run leaves and the resume state of a running one.

``ckpt.pt`` holds the trained weights with the settings that built them, so ``load_model``
rebuilds the model without params.yaml. ``resume.pt`` holds model, optimiser, RNG and the log
rows so far; it is written every ``training.checkpoint_every`` steps and belongs to one
settings hash, so a job started again with other settings starts afresh. File names: vqrepro/runs.py.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import torch

from .io import CorruptFileError, load_tensors, save_tensors, write_text
from .models import VQVAE, ClassifierSettings, ModelSettings, VQClassifier
from .quantizers import build_quantizer
from .tasks import is_classifier


def build_model(settings: dict, in_channels: int, num_classes: int = 0) -> VQVAE | VQClassifier:
    quantizer = build_quantizer(settings["quantizer"], settings["codebook_size"], settings["code_dim"])
    if is_classifier(settings):
        return VQClassifier(in_channels, num_classes, quantizer, ClassifierSettings(**settings["model"]))
    return VQVAE(in_channels, quantizer, ModelSettings(**settings["model"]))


def load_model(ckpt_path: str | Path, device: torch.device) -> tuple[VQVAE, dict]:
    """Load a trained tokenizer from ckpt.pt (checksum verified)."""
    ckpt = load_tensors(ckpt_path)
    settings = json.loads(ckpt["settings"])
    model = build_model(settings, ckpt["in_channels"], ckpt.get("num_classes", 0))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), settings


def resume(path: Path, digest: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           codebook_optimizer: torch.optim.Optimizer | None = None) -> dict | None:
    """Restore model, optimiser and RNG from ``path`` if it exists, is intact and belongs to these settings."""
    if not path.exists():
        return None
    try:
        state = load_tensors(path)
    except CorruptFileError as err:
        print(f"warning: ignoring unusable {path}: {err}", file=sys.stderr)
        return None
    if state["settings_hash"] != digest:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if codebook_optimizer is not None:
        codebook_optimizer.load_state_dict(state["codebook_optimizer"])
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    state["step"] = int(state["step"])
    print(f"resuming {path.parent} from step {state['step']}", file=sys.stderr)
    return state


def save_resume(path: Path, digest: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                codebook_optimizer: torch.optim.Optimizer | None = None, **extra) -> None:
    if codebook_optimizer is not None:
        extra["codebook_optimizer"] = codebook_optimizer.state_dict()
    if torch.cuda.is_available():  # methods that sample on the GPU (LRU, CVQ anchors, SQ-VAE) need it too
        extra["cuda_rng"] = torch.cuda.get_rng_state_all()
    save_tensors(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "rng": torch.get_rng_state(), "settings_hash": digest, **extra})


def discard_resume(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".sha256")):
        leftover.unlink(missing_ok=True)



class TrainLog:
    """CSV of losses, usage and perplexity over steps, rebuilt from resume.pt after a restart.

    The rows up to a checkpoint travel inside resume.pt under ``key`` (``save_resume(..., log_rows=log.rows)``):
    Snakemake deletes a failed job's outputs, the CSV among them, but resume.pt is no output.
    """

    def __init__(self, path: Path, resumed: dict | None, key: str = "log_rows"):
        self.path = path
        self.rows: list[dict] = []
        if resumed is None:
            return
        if key in resumed:
            self.rows = [dict(row) for row in resumed[key]]
        elif path.exists():  # a resume.pt written before the rows were kept in it
            with open(path, newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resumed["step"]]

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())

