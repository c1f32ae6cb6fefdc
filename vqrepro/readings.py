"""Copy a grid point's files out of its trained run (vqrepro/sharing.py says which run and step).

A reading is cheap (file copies and CSV filtering, no torch: ``python -m vqrepro read-run`` starts in
about 0.1 s), and a local rule on a cluster: renaming a study, or adding one that reads runs already
trained, costs seconds. (Not a ``run:`` block: Snakemake starts such a job as a new Snakemake
process that parses the whole workflow again, 10-18 s each, measured on the smoke run.) The copies make ``runs/<study>/<dataset>/<quantizer>/<point>/seed<s>/`` what a run
trained for that grid point alone would have written: the weights and metrics at its step, and
the rows of train_log.csv and convergence.csv that its own schedule would have logged.
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from .io import check_checksum, write_json, write_text
from .runs import CHECKPOINT, CONVERGENCE, FAILURE_RECORD, METRICS, RUNS_DIR, TRAIN_LOG, checksum_of

SNAPSHOT = "snapshots/step{step}"  # below a trained run: the weights and metrics at a shorter reading's step
SOURCE = "source.json"             # in a reading: which trained run, which step


def snapshot_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT.format(step=step)


def _rows_at(source: Path, steps: set[int]) -> str:
    """The CSV at ``source`` with only the rows whose ``step`` is in ``steps`` (header kept)."""
    with open(source, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if int(row["step"]) in steps]
    if not rows:  # as the training loop writes a curve nobody asked for: the header alone
        return ",".join(reader.fieldnames) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames)  # csv's own line ends, as TrainLog writes
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_run(reading: dict, out_dir: str | Path, runs_dir: str | Path = RUNS_DIR) -> None:
    """Write a reading's files into ``out_dir`` from the trained run that ``reading`` names (Reading.settings())."""
    trained = Path(runs_dir) / reading["trained_run"]
    weights_dir = trained if reading["final"] else snapshot_dir(trained, reading["step"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT, METRICS):
        if not (weights_dir / name).exists():
            raise FileNotFoundError(f"{weights_dir / name} is missing: the trained run {trained} has no state at step "
                                    f"{reading['step']}; run its training job again (snakemake --forcerun train_tokenizer)")
    check_checksum(weights_dir / CHECKPOINT)
    for name in (CHECKPOINT, checksum_of(CHECKPOINT), METRICS):
        shutil.copyfile(weights_dir / name, out_dir / name)
    write_text(out_dir / TRAIN_LOG, _rows_at(trained / TRAIN_LOG, set(reading["log_at"])))
    write_text(out_dir / CONVERGENCE, _rows_at(trained / CONVERGENCE, set(reading["measure_at"])))
    write_json(out_dir / SOURCE, {"trained_run": str(trained), "step": reading["step"]})
    (out_dir / FAILURE_RECORD).unlink(missing_ok=True)  # an earlier attempt's, copied here by failures_to_readings
