"""The files a run folder (runs/<study>/<dataset>/<quantizer>/<point>/seed<s>/) holds.

One place for their names, so the training loop, the report and the rules agree.
"""
from __future__ import annotations

import json
from pathlib import Path

CHECKPOINT = "ckpt.pt"            # final weights, with a .sha256 sidecar
TRAIN_LOG = "train_log.csv"       # loss terms and batch statistics over steps
CONVERGENCE = "convergence.csv"   # whole-split usage, perplexity and MSE every training.eval_every steps
METRICS = "metrics.json"          # evaluation on the test split (and usage on the training split)
RESUME = "resume.pt"              # while training: where a killed job continues from
FAILURE_RECORD = "failure.json"   # why the last attempt at this grid point failed


def failure_reason(run_dir: str | Path) -> str | None:
    """One line from the run's failure record (error, step, first line of the message), or None."""
    record = Path(run_dir) / FAILURE_RECORD
    if not record.exists():
        return None
    failure = json.loads(record.read_text())
    return f"{failure['error']} at step {failure['step']}: {failure['message'].splitlines()[0]}"
