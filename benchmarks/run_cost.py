"""CPU-minutes of the default run per study: measured from a run's records, or estimated before one.

    python benchmarks/run_cost.py [--configfile configs/smoke.yaml] [--out benchmarks/results/run_cost.json]
    python benchmarks/run_cost.py --probe [--data data] [--probe-steps 10 30]

Run it from the repository's root with the config files the run used (layered on params.yaml,
as ``snakemake --configfile``); it reads the records in that scale's place (vqrepro/places.py).

Measured (the default): every job that starts a Python process records its wall and CPU seconds
through Snakemake's ``benchmark:`` directive in logs/cost/ (vqrepro.runs.cost_file). Caveat,
measured on 2026-12-07: Snakemake samples a job's CPU time every second for 30 s and then every
30 s, so a job's last seconds (up to 30) go unrecorded; the records of a partial default run
summed to 98.5 CPU-minutes where GNU time gave the whole run 149 (Snakemake's own process was
about 20 of the difference). Read the per-study figures as lower bounds and check the total
against ``/usr/bin/time snakemake --cores all``. The script
sums the CPU seconds of each trained run (vqrepro/sharing.py) under the first study, in
``run_studies`` order, that reads its longest step, and those of data preparation and stage 2
under their own rows. Readings and report jobs are not recorded (each starts Python without torch
and costs about 0.1 s). A trained run without a record (a run stopped part-way) is counted at the
CPU time per step of its configuration's recorded seeds, and listed as projected; one whose
configuration has no record at all is listed as missing and not counted.

Estimated (--probe): for every trained run that differs in more than its seed, the real training
loop (one thread, the CPU, timed in CPU seconds) runs twice with a short schedule; the difference gives the cost per
step, the rest the job's set-up; one evaluation and one whole-split measurement are timed too. A
trained run's estimate is start-up (measured ``import vqrepro.train, vqrepro.evaluate``) + set-up +
steps x seconds per step + (1 + snapshots) evaluations + its measurements, beside the same priced
as before runs were shared (every grid point trained on its own). Stage 2 is not estimated.

Both print a Markdown table per study and write the figures, with the total under
``total_cpu_minutes``, to --out.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vqrepro import config as vqconfig
from vqrepro import places, runs, sharing


def children_cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def start_up_seconds(repeats: int = 3) -> float:
    """CPU seconds of a training job's start (CPU time, not wall: the machine may be busy)."""
    times = []
    for _ in range(repeats):
        began = children_cpu_seconds()
        subprocess.run([sys.executable, "-c", "import vqrepro.train, vqrepro.evaluate"], check=True)
        times.append(children_cpu_seconds() - began)
    return sorted(times)[len(times) // 2]


def probe(settings: dict, data_dir: Path, short: int, long: int, evaluation: dict) -> dict:
    """Seconds per step, set-up, one evaluation and one whole-split measurement of these settings."""
    from vqrepro.evaluate import evaluate_tokenizer
    from vqrepro.train import train_tokenizer

    def timed_training(steps: int, measure: bool, out: Path) -> float:
        probe_settings = {**settings, "training": {**settings["training"], "steps": steps, "log_every": steps,
                                                   "checkpoint_every": 10**9}}
        readings = {"snapshots": [], "measure_at": [steps] if measure else [], "log_at": [steps]}
        began = time.process_time()  # CPU time of this one-thread process: a busy machine does not inflate it
        train_tokenizer(probe_settings, data_dir, out, threads=1, device="cpu", readings=readings)
        return time.process_time() - began

    with tempfile.TemporaryDirectory() as tmp:
        t_short = timed_training(short, False, Path(tmp) / "short")
        t_long = timed_training(long, False, Path(tmp) / "long")
        t_measured = timed_training(short, True, Path(tmp) / "measured")
        began = time.process_time()
        evaluate_tokenizer(Path(tmp) / "short" / "ckpt.pt", data_dir, Path(tmp) / "metrics.json", evaluation,
                           threads=1, device="cpu")
        evaluate = time.process_time() - began
    per_step = max(t_long - t_short, 0.0) / (long - short)
    return {"per_step": per_step, "setup": max(t_short - short * per_step, 0.0),
            "measure": max(t_measured - t_short, 0.0), "evaluate": evaluate}


def run_seconds(cost: dict, start_up: float, steps: int, evaluations: int, measurements: int) -> float:
    return start_up + cost["setup"] + steps * cost["per_step"] + evaluations * cost["evaluate"] + measurements * cost["measure"]


def owners(cfg: dict, readings: dict) -> dict[str, str]:
    """The study each trained run is counted under: the first, in run_studies order, that reads its last step."""
    owner: dict[str, str] = {}
    for study in sharing.reading_studies(cfg):
        for key in vqconfig.grid(cfg, study):
            if readings[key].step == readings[key].run.steps:
                owner.setdefault(readings[key].run.path, study)
    return owner


def empty_rows(cfg: dict, readings: dict) -> dict[str, dict]:
    rows = {study: {"grid_points": 0, "trained_runs": 0, "cpu_minutes": 0.0} for study in sharing.reading_studies(cfg)}
    for study in rows:
        rows[study]["grid_points"] = len(vqconfig.grid(cfg, study))
    return rows


def record(path: Path) -> dict | None:
    """Snakemake's benchmark record: seconds (wall) and cpu_time of the job."""
    if not path.exists():
        return None
    with open(path) as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {"wall": float(row["s"]), "cpu": float(row["cpu_time"]), "max_rss_mb": float(row["max_rss"] or 0)}


def measured(cfg: dict, readings: dict, probe_missing: tuple[str, int, int] | None = None) -> dict:
    """Per-study CPU minutes from the records of the last run (logs/cost/); with ``probe_missing``
    (data folder, probe steps), a configuration with no recorded seed at all is probed and estimated."""
    rows, owner = empty_rows(cfg, readings), owners(cfg, readings)
    missing, longest, peak = [], {"job": None, "minutes": 0.0}, 0.0

    def count(job: str, rec: dict) -> None:
        # A one-thread job's CPU time is its length on a core of its own; its wall time also holds
        # the waits of a loaded machine (a niced run, other jobs), so the longest job is by CPU time.
        nonlocal longest, peak
        if rec["cpu"] / 60 > longest["minutes"]:
            longest = {"job": job, "minutes": round(rec["cpu"] / 60, 1), "wall_minutes": round(rec["wall"] / 60, 1)}
        peak = max(peak, rec["max_rss_mb"])

    trained = sharing.trained_runs(readings)
    recorded = {path: record(Path(runs.cost_file(runs.log_file(path, "train.log")))) for path in trained}
    # CPU seconds per step of each configuration (a trained run less its seed), from the runs recorded
    per_step: dict[str, list[float]] = {}
    for path, rec in recorded.items():
        if rec is not None:
            per_step.setdefault(sharing.identity({**trained[path].settings, "seed": 0}), []).append(
                rec["cpu"] / trained[path].steps)
    projected, probed, start_up = [], [], 0.0
    for path, run in trained.items():
        rec, row = recorded[path], rows[owner[path]]
        row["trained_runs"] += 1
        if rec is not None:
            row["cpu_minutes"] += rec["cpu"] / 60
            count(path, rec)
            continue
        seeds = per_step.get(sharing.identity({**run.settings, "seed": 0}))
        if seeds is None and probe_missing is not None:
            data, short, long = probe_missing
            start_up = start_up if probed else start_up_seconds()
            cost = probe(run.settings, Path(data) / run.dataset, short, long, vqconfig.eval_settings(cfg))
            seconds = run_seconds(cost, start_up, run.steps, 1 + len(run.snapshots), len(run.measure_at))
            row["cpu_minutes"] += seconds / 60
            row["probed_runs"] = row.get("probed_runs", 0) + 1
            probed.append(path)
            print(f"{path}: no seed recorded, probed at {seconds / 60:.1f} CPU-minutes", file=sys.stderr, flush=True)
            per_step.setdefault(sharing.identity({**run.settings, "seed": 0}), []).append(seconds / run.steps)
            continue
        if seeds is None:
            missing.append(path)
            continue
        # an unfinished run: its steps at the mean cost per step of its configuration's recorded seeds
        row["cpu_minutes"] += run.steps * sum(seeds) / len(seeds) / 60
        row["projected_runs"] = row.get("projected_runs", 0) + 1
        projected.append(path)
    others = {"data preparation": "prepare_data", "stage 2 (classifier, token grids, priors, samples, scores)": "*"}
    for label, pattern in others.items():
        files = (sorted(Path("logs/cost/prepare_data").glob("*.tsv")) if pattern == "prepare_data" else
                 sorted(p for p in Path("logs/cost").rglob("*.tsv")
                        if "prepare_data" not in p.parts and "trained" not in p.parts))
        recs = [(str(f), record(f)) for f in files]
        rows[label] = {"grid_points": 0, "trained_runs": 0, "jobs": len(recs),
                       "cpu_minutes": sum(r["cpu"] for _, r in recs) / 60}
        for job, rec in recs:
            count(job, rec)
    return {"rows": rows, "missing_records": missing, "projected_from_other_seeds": projected,
            "probed_without_any_record": probed,
            "longest_job": longest, "peak_rss_mb": round(peak)}


def estimated(cfg: dict, readings: dict, data: str, short: int, long: int) -> dict:
    """Per-study CPU minutes from short timed trainings (no run needed), with and without sharing."""
    evaluation = vqconfig.eval_settings(cfg)
    start_up = start_up_seconds()
    costs: dict[str, dict] = {}

    def cost_of(run: sharing.TrainedRun) -> dict:
        without_seed = sharing.identity({**run.settings, "seed": 0})
        if without_seed not in costs:
            costs[without_seed] = probe(run.settings, Path(data) / run.dataset, short, long, evaluation)
            c = costs[without_seed]
            print(f"{run.path}: {c['per_step'] * 1000:.0f} ms/step, set-up {c['setup']:.1f} s, evaluation "
                  f"{c['evaluate']:.1f} s, measurement {c['measure']:.1f} s", file=sys.stderr, flush=True)
        return costs[without_seed]

    rows, owner = empty_rows(cfg, readings), owners(cfg, readings)
    longest = {"job": None, "minutes": 0.0}
    for path, run in sharing.trained_runs(readings).items():
        seconds = run_seconds(cost_of(run), start_up, run.steps, 1 + len(run.snapshots), len(run.measure_at))
        rows[owner[path]]["trained_runs"] += 1
        rows[owner[path]]["cpu_minutes"] += seconds / 60
        if seconds / 60 > longest["minutes"]:
            longest = {"job": path, "minutes": round(seconds / 60, 1)}
    for study in rows:
        rows[study]["cpu_minutes_without_sharing"] = sum(
            run_seconds(cost_of(readings[key].run), start_up, readings[key].step, 1, len(readings[key].measure_at))
            for key in vqconfig.grid(cfg, study)) / 60
    total_before = sum(r["cpu_minutes_without_sharing"] for r in rows.values())
    return {"rows": rows, "longest_job": longest, "start_up_seconds": round(start_up, 2),
            "probe_steps": [short, long], "total_cpu_minutes_without_sharing": round(total_before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], metavar="FILE",
                        help="config files layered on params.yaml, as the run was started with")
    parser.add_argument("--probe", action="store_true", help="estimate by short timed trainings instead of reading a run's records")
    parser.add_argument("--data", default="data", help="--probe, --probe-missing: the prepared data sets")
    parser.add_argument("--probe-missing", action="store_true",
                        help="with records: probe the configurations of which no seed has a record (a run stopped early)")
    parser.add_argument("--probe-steps", type=int, nargs=2, default=[10, 30])
    parser.add_argument("--out", default="benchmarks/results/run_cost.json")
    args = parser.parse_args()
    cfg, source = vqconfig.load_layered(args.configfile)
    readings = sharing.plan(cfg)
    out = Path(args.out).resolve()
    os.chdir(places.workdir(cfg))  # the scale's place: its data/ and logs/cost/
    if args.probe:
        result = estimated(cfg, readings, args.data, *args.probe_steps)
    else:
        result = measured(cfg, readings, (args.data, *args.probe_steps) if args.probe_missing else None)
    rows = result["rows"]
    total = sum(r["cpu_minutes"] for r in rows.values())
    print("| study | grid points | trained runs counted here | CPU minutes |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['grid_points']} | {r['trained_runs']} | {r['cpu_minutes']:.1f} |")
    print(f"| all | {len(readings)} | {len(sharing.trained_runs(readings))} | {total:.1f} |")
    print(f"\nlongest job: {result['longest_job']['job']}, {result['longest_job']['minutes']} min")
    if result.get("projected_from_other_seeds"):
        print(f"{len(result['projected_from_other_seeds'])} trained runs without a record counted at their "
              "configuration's other seeds' CPU time per step")
    if result.get("probed_without_any_record"):
        print(f"{len(result['probed_without_any_record'])} trained runs of configurations with no record at all "
              "estimated by --probe-missing")
    if result.get("missing_records"):
        print(f"no record for {len(result['missing_records'])} trained runs (not counted): "
              f"{result['missing_records'][:3]} ...")
    for row in rows.values():
        for key, value in row.items():
            row[key] = round(value, 2) if isinstance(value, float) else value
    summary = {"measured": datetime.date.today().isoformat(), "how": "estimated (--probe)" if args.probe else
               "measured (Snakemake benchmark records, logs/cost/)", "machine": platform.processor() or platform.machine(),
               "config": source, "place": places.workdir(cfg), **result, "grid_points": len(readings),
               "trained_runs": len(sharing.trained_runs(readings)), "total_cpu_minutes": round(total, 1)}
    summary["studies"] = summary.pop("rows")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
