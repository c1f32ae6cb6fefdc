"""Stage 1: train one tokenizer (one grid point) with a resumable, deterministic loop.

Settings come as one dict (the slice of params.yaml this run depends on):
    dataset, quantizer (preset), model, training (the schedule: vqrepro/training_settings.py),
    codebook_size, code_dim, seed, and ``task: classification`` for a classifier with a VQ
    bottleneck (absent: a VQ-VAE; what differs between the two: vqrepro/tasks.py).
The run folder receives ``ckpt.pt`` (final weights, checksummed), ``train_log.csv``,
``convergence.csv`` (whole-split usage, perplexity and MSE every ``training.eval_every``
steps; only the header when that is 0) and, while training, ``resume.pt``: a job killed and started again continues from
it and, on the CPU with a fixed seed, ends with the same weights as an
uninterrupted run.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import runtime
from .data import iterate_batches, load_split
from .snapshots import measure_split
from .io import CorruptFileError, load_tensors, save_tensors, write_text
from .errors import NonFiniteLossError
from .runs import CHECKPOINT, CONVERGENCE, FAILURE_RECORD, RESUME, TRAIN_LOG
from .models import VQVAE, ClassifierSettings, ModelSettings, VQClassifier
from .quantizers import build_quantizer
from .tasks import is_classifier, task_for
from .training_settings import TrainingSettings


CONVERGENCE_COLUMNS = ["step", "split", "usage", "perplexity", "mse", "codes_used", "tokens"]


def record_failure(out_dir: Path, err: Exception, step: int, digest: str) -> None:
    """Leave the reason next to the run, so a report made with --keep-going can mark the grid point."""
    write_text(out_dir / FAILURE_RECORD, json.dumps(
        {"error": type(err).__name__, "message": str(err), "step": step, "settings_hash": digest}, indent=1))


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


def make_optimizers(model: VQVAE, schedule: TrainingSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam over the whole model; with alternating optimisation a second Adam for the codebook's inner steps.

    The task step still updates the codebook, as vqtorch's in-place optimiser does:
    synchronised commitment (a task gradient on the codes) needs it.
    """
    adam = {"lr": schedule.lr, "betas": schedule.betas}
    task_optimizer = torch.optim.Adam(model.parameters(), **adam)
    if model.quantizer.inner_steps == 0:
        return task_optimizer, None
    inner = model.quantizer.codebook_parameters()
    if not inner:
        raise ValueError(f"{type(model.quantizer).__name__} asks for inner steps but has no codebook parameters")
    return task_optimizer, torch.optim.Adam(inner, **adam)


def alternating_codebook_steps(model: VQVAE | VQClassifier, images: torch.Tensor, codebook_optimizer: torch.optim.Optimizer) -> None:
    """Inner steps of alternating optimisation ("Straightening Out the STE", Eq. 17).

    The batch is split evenly across the inner steps, as in the paper's Table 10, so
    that every setting sees the same number of examples.
    """
    with torch.no_grad():
        z = model.encode(images).reshape(-1, model.quantizer.code_dim)
    for part in z.chunk(model.quantizer.inner_steps):
        codebook_optimizer.zero_grad(set_to_none=True)
        model.quantizer.alternating_loss(part).backward()
        codebook_optimizer.step()


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


def train_tokenizer(settings: dict, data_dir: str | Path, out_dir: str | Path, threads: int = 1, device: str = "auto") -> Path:
    schedule = TrainingSettings.from_dict(settings["training"])
    out_dir = Path(out_dir)
    resume_path, final_path = out_dir / RESUME, out_dir / CHECKPOINT
    digest = runtime.settings_hash(settings)
    dev = runtime.configure(threads, settings["seed"], device)

    train_split = load_split(data_dir, "train")
    in_channels = train_split.shape[0]
    task = task_for(settings, schedule, train_split, data_dir)
    model = build_model(settings, in_channels, task.num_classes).to(dev)
    optimizer, codebook_optimizer = make_optimizers(model, schedule)

    state = resume(resume_path, digest, model, optimizer, codebook_optimizer)
    start = state["step"] if state else 0

    log = TrainLog(out_dir / TRAIN_LOG, state)
    curve = TrainLog(out_dir / CONVERGENCE, state, key="curve_rows")
    test_split = load_split(data_dir, "test") if schedule.eval_every else None
    steps_per_epoch = len(train_split) // schedule.batch_size
    steps = schedule.steps
    model.train()
    began = time.time()
    batches = task.batches(train_split, schedule.batch_size, settings["seed"], start, steps, schedule.workers)
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=str(out_dir), file=sys.stderr,
               mininterval=10.0)
    outer_steps = model.quantizer.outer_steps
    for step in bar:
        images, labels = next(batches)
        images = model.images_in(images.to(dev))
        model.quantizer.begin_step(step, step * schedule.batch_size // len(train_split))
        for opt in filter(None, (optimizer, codebook_optimizer)):
            for group in opt.param_groups:
                group["lr"] = schedule.learning_rate(step, steps_per_epoch)
        if codebook_optimizer is not None:
            alternating_codebook_steps(model, images, codebook_optimizer)
        # Outer (task) steps split the batch evenly, as in the STE paper's Table 10 (one step by default).
        targets = task.targets(images, labels).chunk(outer_steps)
        for part, target in zip(images.chunk(outer_steps), targets):
            output, out = model(part)
            task_loss = task.loss(output, target)
            loss = task_loss + out.loss
            if not torch.isfinite(loss):
                err = NonFiniteLossError(
                    f"loss is {loss.item()} at step {step} in {out_dir}; no checkpoint written. "
                    f"Lower training.lr or check the quantizer preset {settings['quantizer']}."
                )
                record_failure(out_dir, err, step, digest)
                raise err
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if schedule.grad_clip_norm is not None:  # as the NS-VQ code: total norm over all parameters
                torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.grad_clip_norm)
            optimizer.step()
        model.quantizer.on_step(step)
        done = step + 1
        if done % schedule.log_every == 0 or done == steps:
            row = {"step": done, "loss": loss.item(), task.log_name: task_loss.item()}
            row.update({name: value.item() for name, value in sorted(out.losses.items())})
            row.update(out.stats)
            log.add(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", usage=f"{out.stats['batch_usage']:.2f}", refresh=False)
        if schedule.eval_every and (done % schedule.eval_every == 0 or done == steps):
            for name, split in (("train", train_split), ("test", test_split)):
                measured = measure_split(model, split, 256, dev, with_mse=task.measures_mse)
                curve.add({"step": done, "split": name, **{c: measured.get(c, "") for c in CONVERGENCE_COLUMNS[2:]}})
        if done % schedule.checkpoint_every == 0 and done < steps:
            log.flush()
            curve.flush()
            save_resume(resume_path, digest, model, optimizer, done, codebook_optimizer, log_rows=log.rows,
                        curve_rows=curve.rows)
    log.flush()
    curve.flush()
    if not curve.rows:  # eval_every 0: no snapshots asked for, but the rule's output exists
        write_text(curve.path, ",".join(CONVERGENCE_COLUMNS) + "\n")
    save_tensors(final_path, {
        "model": model.state_dict(), "in_channels": in_channels, "num_classes": task.num_classes, "settings": json.dumps(settings, sort_keys=True),
        "settings_hash": digest, "steps": steps, "train_seconds": time.time() - began,
    })
    discard_resume(resume_path)
    (out_dir / FAILURE_RECORD).unlink(missing_ok=True)
    return final_path
