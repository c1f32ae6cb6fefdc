"""The files a run folder (runs/<study>/<dataset>/<quantizer>/<point>/seed<s>/) holds.

One place for their names, so the training loop, the report and the rules agree.
"""
from __future__ import annotations

CHECKPOINT = "ckpt.pt"            # final weights, with a .sha256 sidecar
TRAIN_LOG = "train_log.csv"       # loss terms and batch statistics over steps
CONVERGENCE = "convergence.csv"   # whole-split usage, perplexity and MSE every training.eval_every steps
METRICS = "metrics.json"          # evaluation on the test split (and usage on the training split)
RESUME = "resume.pt"              # while training: where a killed job continues from
FAILURE_RECORD = "failure.json"   # why the last attempt at this grid point failed
