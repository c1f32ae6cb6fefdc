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

A run shared by several studies (vqrepro/sharing.py) is trained once with ``readings``: it
measures and logs at the steps any of them asks for and, at every shorter study's step, leaves
a snapshot (``snapshots/step<N>/``: weights, checksum and, with ``evaluation``, metrics.json)
that vqrepro/readings.py copies out. Measurements and evaluations inside the loop keep every
random state as it was, so they change nothing about the weights that follow.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import runtime
from .checkpoints import TrainLog, build_model, discard_resume, resume, save_resume
from .data import load_split
from .errors import NonFiniteLossError
from .io import save_tensors, write_text
from .models import VQVAE, VQClassifier
from .readings import snapshot_dir
from .runs import CHECKPOINT, CONVERGENCE, FAILURE_RECORD, METRICS, RESUME, TRAIN_LOG, record_failure
from .snapshots import measure_split
from .tasks import task_for
from .training_settings import TrainingSettings, every

CONVERGENCE_COLUMNS = ["step", "split", "usage", "perplexity", "mse", "codes_used", "tokens"]


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


def default_readings(schedule: TrainingSettings) -> dict:
    """A run read by itself alone: no snapshots; it measures and logs at its own intervals and at its end."""
    return {"snapshots": [], "measure_at": every(schedule.eval_every, schedule.steps),
            "log_at": every(schedule.log_every, schedule.steps)}


def _snapshots_missing(out_dir: Path, snapshots: list[int], up_to: int) -> list[int]:
    return [n for n in snapshots if n <= up_to and not (snapshot_dir(out_dir, n) / CHECKPOINT).exists()]


def _weights(model, settings: dict, step: int, in_channels: int, num_classes: int, began: float) -> dict:
    """What ckpt.pt holds: the weights at ``step`` with the settings of a run that stops there."""
    at_step = {**settings, "training": {**settings["training"], "steps": step}}
    return {"model": model.state_dict(), "in_channels": in_channels, "num_classes": num_classes,
            "settings": json.dumps(at_step, sort_keys=True), "settings_hash": runtime.settings_hash(at_step),
            "steps": step, "train_seconds": time.time() - began}


def train_tokenizer(settings: dict, data_dir: str | Path, out_dir: str | Path, threads: int = 1, device: str = "auto",
                    readings: dict | None = None, evaluation: dict | None = None) -> Path:
    """Train one run; ``readings`` (TrainedRun.readings_settings()) lists its snapshot, measurement
    and log steps, ``evaluation`` the settings each snapshot is evaluated with (the final
    checkpoint is evaluated by the caller)."""
    schedule = TrainingSettings.from_dict(settings["training"])
    readings = readings or default_readings(schedule)
    snapshots, measure_at, log_at = set(readings["snapshots"]), set(readings["measure_at"]), set(readings["log_at"])
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
    missing = _snapshots_missing(out_dir, readings["snapshots"], start)
    if missing:
        print(f"{out_dir}: snapshots {missing} of the resumed run are gone; training from step 0", file=sys.stderr)
        discard_resume(resume_path)
        return train_tokenizer(settings, data_dir, out_dir, threads, device, readings, evaluation)
    if not start:  # snapshots of an earlier attempt or of other readings
        shutil.rmtree(snapshot_dir(out_dir, 0).parent, ignore_errors=True)

    log = TrainLog(out_dir / TRAIN_LOG, state)
    curve = TrainLog(out_dir / CONVERGENCE, state, key="curve_rows")
    test_split = load_split(data_dir, "test") if measure_at else None
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
        if done in log_at:
            row = {"step": done, "loss": loss.item(), task.log_name: task_loss.item()}
            row.update({name: value.item() for name, value in sorted(out.losses.items())})
            row.update(out.stats)
            log.add(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", usage=f"{out.stats['batch_usage']:.2f}", refresh=False)
        if done in measure_at:
            with runtime.random_state_kept():
                for name, split in (("train", train_split), ("test", test_split)):
                    measured = measure_split(model, split, 256, dev, with_mse=task.measures_mse)
                    curve.add({"step": done, "split": name, **{c: measured.get(c, "") for c in CONVERGENCE_COLUMNS[2:]}})
        if done in snapshots:
            snapshot = snapshot_dir(out_dir, done)
            save_tensors(snapshot / CHECKPOINT, _weights(model, settings, done, in_channels, task.num_classes, began))
            if evaluation is not None:
                from .evaluate import evaluate_tokenizer

                with runtime.random_state_kept():
                    evaluate_tokenizer(snapshot / CHECKPOINT, data_dir, snapshot / METRICS, evaluation, threads, device)
        if done % schedule.checkpoint_every == 0 and done < steps:
            log.flush()
            curve.flush()
            save_resume(resume_path, digest, model, optimizer, done, codebook_optimizer, log_rows=log.rows,
                        curve_rows=curve.rows)
    log.flush()
    curve.flush()
    if not curve.rows:  # no measurements asked for, but the rule's output exists
        write_text(curve.path, ",".join(CONVERGENCE_COLUMNS) + "\n")
    save_tensors(final_path, _weights(model, settings, steps, in_channels, task.num_classes, began))
    discard_resume(resume_path)
    (out_dir / FAILURE_RECORD).unlink(missing_ok=True)
    return final_path
