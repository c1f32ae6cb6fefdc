"""One trained run per set of weights, read by every study that asks for it.

A study's grid point (its ``RunKey``) names a *reading*: the state of one *trained run* at one
step. Two grid points share a trained run when everything that decides the weights is the
same: data set, model, quantizer settings, K, D, seed and the training loop less the settings
that only say when to stop, measure, log or save (``WEIGHT_FREE``). A study's name, a preset's
name and the length of its schedule do not split a run. The learning rate and the batch order
are pure functions of the step (vqrepro/training_settings.py, vqrepro/data.py), and whole-split
measurements leave the random state untouched, so a run's state at step N is the state of a
separately trained N-step run: a shorter schedule is read from the longer run's snapshot at N.

The trained run trains to the longest step any reading asks for, saves a snapshot (weights
and their evaluation) at every shorter one, measures at every step a reading's convergence
curve asks for, and logs at every step a reading's log asks for. Each reading then copies its
files out (vqrepro/readings.py), so everything downstream reads ``runs/<study>/...`` as before.
Which readings exist comes from the run's studies (``run_studies`` and the tokenizer studies of
``run_generation_studies``), never from the targets of one invocation, so a trained run's
settings are the same whichever tables are asked for. Free of torch: the Snakefile plans with it.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from . import config as vqconfig
from .runs import RunKey
from .training_settings import every

# Training settings that do not change the weights at any step: read steps, not run identity.
WEIGHT_FREE = ("steps", "eval_every", "log_every", "checkpoint_every")


def identity(settings: dict) -> str:
    """The hash of what decides a run's weights (its settings less WEIGHT_FREE)."""
    weights = {**settings, "training": {k: v for k, v in settings["training"].items() if k not in WEIGHT_FREE}}
    return hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TrainedRun:
    """One trained run: folder ``runs/trained/<dataset>/<name>``."""

    name: str
    dataset: str
    settings: dict                 # weights' settings; training.steps = the longest reading
    snapshots: tuple[int, ...]     # shorter steps that a reading reads (weights and evaluation kept)
    measure_at: tuple[int, ...]    # steps at which whole splits are measured (convergence.csv)
    log_at: tuple[int, ...]        # steps at which train_log.csv gets a row

    @property
    def path(self) -> str:
        return f"trained/{self.dataset}/{self.name}"

    @property
    def steps(self) -> int:
        return self.settings["training"]["steps"]

    def readings_settings(self) -> dict:
        """What the training job needs beyond the weights' settings (its ``--readings`` file)."""
        return {"snapshots": list(self.snapshots), "measure_at": list(self.measure_at), "log_at": list(self.log_at)}


@dataclass(frozen=True)
class Reading:
    """What one grid point reads from its trained run."""

    run: TrainedRun
    step: int
    measure_at: tuple[int, ...]
    log_at: tuple[int, ...]

    def settings(self) -> dict:
        """The reading job's settings slice: where to copy from and which rows to keep."""
        return {"trained_run": self.run.path, "step": self.step, "final": self.step == self.run.steps,
                "measure_at": list(self.measure_at), "log_at": list(self.log_at)}


def _run_name(settings: dict) -> str:
    method = settings["quantizer"].get("method", "run")
    return f"{method}_K{settings['codebook_size']}_D{settings['code_dim']}_seed{settings['seed']}_{identity(settings)}"


def plan_keys(config: dict, keys: list[RunKey]) -> dict[RunKey, Reading]:
    """The reading of each grid point when exactly ``keys`` are trained."""
    groups: dict[str, list[tuple[RunKey, dict]]] = {}
    for key in dict.fromkeys(keys):
        settings = vqconfig.train_settings(config, key)
        groups.setdefault(identity(settings), []).append((key, settings))
    readings: dict[RunKey, Reading] = {}
    for members in groups.values():
        schedules = [settings["training"] for _, settings in members]
        longest = max(schedules, key=lambda training: training["steps"])
        steps = longest["steps"]
        own_steps = {key: settings["training"]["steps"] for key, settings in members}
        measures = {key: every(settings["training"].get("eval_every", 0), own_steps[key]) for key, settings in members}
        logs = {key: every(settings["training"]["log_every"], own_steps[key]) for key, settings in members}
        training = {**longest, "steps": steps, "log_every": math.gcd(*(t["log_every"] for t in schedules)),
                    "checkpoint_every": min(t["checkpoint_every"] for t in schedules)}
        training.pop("eval_every", None)  # the measurements are listed (measure_at), not an interval
        settings = {**members[0][1], "training": training}
        run = TrainedRun(
            name=_run_name(settings), dataset=settings["dataset"], settings=settings,
            snapshots=tuple(sorted({n for n in own_steps.values() if n < steps})),
            measure_at=tuple(sorted(set().union(*measures.values()))),
            log_at=tuple(sorted(set().union(*logs.values()))),
        )
        for key, _ in members:
            readings[key] = Reading(run, own_steps[key], tuple(measures[key]), tuple(logs[key]))
    return readings


def reading_studies(config: dict) -> list[str]:
    """The studies whose grid points share trained runs: the run's studies and its generation studies' tokenizers."""
    tokenizers = [config["generation_studies"][g]["tokenizer_study"] for g in config.get("run_generation_studies", [])]
    return list(dict.fromkeys([*config["run_studies"], *tokenizers]))


def plan(config: dict) -> dict[RunKey, Reading]:
    """The reading of every grid point of the run's studies."""
    return plan_keys(config, [key for study in reading_studies(config) for key in vqconfig.grid(config, study)])


def trained_runs(readings: dict[RunKey, Reading]) -> dict[str, TrainedRun]:
    """The distinct trained runs of a plan, by path below runs/."""
    return {reading.run.path: reading.run for reading in readings.values()}
