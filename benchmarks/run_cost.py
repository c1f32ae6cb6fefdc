"""CPU cost of the default run, per study, from short timed trainings of each distinct trained run.

    python benchmarks/run_cost.py [--params params.yaml] [--data data] [--probe-steps 10 30]
                                  [--out benchmarks/results/run_cost.json]

The run trains each distinct set of weights once (vqrepro/sharing.py). For every trained run that
differs in more than its seed, the real training loop (vqrepro.train.train_tokenizer, one thread,
the CPU) runs twice with a short schedule; the difference gives the seconds per step, the rest the
job's data loading and set-up. One evaluation and one whole-split measurement are timed too. A
trained run's estimate is start-up (measured ``import vqrepro.train, vqrepro.evaluate``) + set-up +
steps x seconds per step + (1 + snapshots) evaluations + its measurements. Each trained run is
counted under the first study (in ``run_studies`` order) that reads its longest step.

Beside it, the same measurements priced as before runs were shared (every grid point trained on its
own), so the saving of sharing is in the same units. Prints a Markdown table per study and writes
the figures, with the total under ``total_cpu_minutes``, to --out. Stage 2 (priors, sampling) and
the report jobs are not included: minutes, measured by a whole run (docs/benchmarks.md). Needs the
prepared data sets under --data (``snakemake data_all`` or one run of the workflow).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vqrepro import config as vqconfig
from vqrepro import sharing


def start_up_seconds(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import vqrepro.train, vqrepro.evaluate"], check=True)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def probe(settings: dict, data_dir: Path, short: int, long: int, evaluation: dict) -> dict:
    """Seconds per step, set-up, one evaluation and one whole-split measurement of these settings."""
    from vqrepro.evaluate import evaluate_tokenizer
    from vqrepro.train import train_tokenizer

    def timed_training(steps: int, measure: bool, out: Path) -> float:
        probe_settings = {**settings, "training": {**settings["training"], "steps": steps, "log_every": steps,
                                                   "checkpoint_every": 10**9}}
        readings = {"snapshots": [], "measure_at": [steps] if measure else [], "log_at": [steps]}
        began = time.perf_counter()
        train_tokenizer(probe_settings, data_dir, out, threads=1, device="cpu", readings=readings)
        return time.perf_counter() - began

    with tempfile.TemporaryDirectory() as tmp:
        t_short = timed_training(short, False, Path(tmp) / "short")
        t_long = timed_training(long, False, Path(tmp) / "long")
        t_measured = timed_training(short, True, Path(tmp) / "measured")
        began = time.perf_counter()
        evaluate_tokenizer(Path(tmp) / "short" / "ckpt.pt", data_dir, Path(tmp) / "metrics.json", evaluation,
                           threads=1, device="cpu")
        evaluate = time.perf_counter() - began
    per_step = max(t_long - t_short, 0.0) / (long - short)
    return {"per_step": per_step, "setup": max(t_short - short * per_step, 0.0),
            "measure": max(t_measured - t_short, 0.0), "evaluate": evaluate}


def run_seconds(cost: dict, start_up: float, steps: int, evaluations: int, measurements: int) -> float:
    return start_up + cost["setup"] + steps * cost["per_step"] + evaluations * cost["evaluate"] + measurements * cost["measure"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data")
    parser.add_argument("--probe-steps", type=int, nargs=2, default=[10, 30])
    parser.add_argument("--out", default="benchmarks/results/run_cost.json")
    args = parser.parse_args()
    cfg = vqconfig.load(args.params)
    evaluation = vqconfig.eval_settings(cfg)
    short, long = args.probe_steps
    start_up = start_up_seconds()

    readings = sharing.plan(cfg)
    costs: dict[str, dict] = {}

    def cost_of(run: sharing.TrainedRun) -> dict:
        without_seed = sharing.identity({**run.settings, "seed": 0})
        if without_seed not in costs:
            costs[without_seed] = probe(run.settings, Path(args.data) / run.dataset, short, long, evaluation)
            c = costs[without_seed]
            print(f"{run.path}: {c['per_step'] * 1000:.0f} ms/step, set-up {c['setup']:.1f} s, evaluation "
                  f"{c['evaluate']:.1f} s, measurement {c['measure']:.1f} s", file=sys.stderr, flush=True)
        return costs[without_seed]

    studies = sharing.reading_studies(cfg)
    owner: dict[str, str] = {}
    for study in studies:  # a trained run counts under the first study that reads its last step
        for key in vqconfig.grid(cfg, study):
            reading = readings[key]
            if reading.step == reading.run.steps:
                owner.setdefault(reading.run.path, study)
    per_study = {study: {"grid_points": 0, "trained_runs": 0, "cpu_minutes": 0.0, "cpu_minutes_without_sharing": 0.0}
                 for study in studies}
    longest = {"run": None, "minutes": 0.0}
    for path, run in sharing.trained_runs(readings).items():
        cost = cost_of(run)
        seconds = run_seconds(cost, start_up, run.steps, 1 + len(run.snapshots), len(run.measure_at))
        per_study[owner[path]]["trained_runs"] += 1
        per_study[owner[path]]["cpu_minutes"] += seconds / 60
        if seconds / 60 > longest["minutes"]:
            longest = {"run": path, "minutes": seconds / 60}
    for study in studies:
        for key in vqconfig.grid(cfg, study):
            reading = readings[key]
            per_study[study]["grid_points"] += 1
            per_study[study]["cpu_minutes_without_sharing"] += run_seconds(
                cost_of(reading.run), start_up, reading.step, 1, len(reading.measure_at)) / 60

    total = sum(s["cpu_minutes"] for s in per_study.values())
    before = sum(s["cpu_minutes_without_sharing"] for s in per_study.values())
    print(f"start-up per training job (import torch + vqrepro): {start_up:.1f} s\n")
    print("| study | grid points | trained runs counted here | CPU minutes | CPU minutes, each grid point trained alone |")
    print("|---|---|---|---|---|")
    for study, s in per_study.items():
        print(f"| {study} | {s['grid_points']} | {s['trained_runs']} | {s['cpu_minutes']:.1f} | "
              f"{s['cpu_minutes_without_sharing']:.1f} |")
    points = sum(s["grid_points"] for s in per_study.values())
    print(f"| all tokenizers | {points} | {len(sharing.trained_runs(readings))} | {total:.1f} | {before:.1f} |")
    print(f"\nlongest training job: {longest['run']}, {longest['minutes']:.1f} min")
    result = {
        "measured": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
        "params": args.params, "probe_steps": [short, long], "start_up_seconds": round(start_up, 2),
        "studies": {study: {k: round(v, 2) if isinstance(v, float) else v for k, v in s.items()}
                    for study, s in per_study.items()},
        "grid_points": points, "trained_runs": len(sharing.trained_runs(readings)),
        "total_cpu_minutes": round(total, 1), "total_cpu_minutes_without_sharing": round(before, 1),
        "longest_job": {"run": longest["run"], "minutes": round(longest["minutes"], 1)},
        "not_included": "stage 2 (classifier, priors, sampling, scoring), data preparation and report jobs",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
