"""CPU cost of the default run, per study, from short timed trainings of each distinct grid point.

    python benchmarks/run_cost.py [--params params.yaml] [--data data] [--probe-steps 10 30]

For every tokenizer grid point of ``run_studies`` that differs in more than its seed, the real
training loop (vqrepro.train.train_tokenizer, one thread, the CPU) runs twice with a short
schedule; the difference gives the seconds per step, the rest the job's data loading and
set-up. A grid point's estimate is start-up (measured ``import torch`` + vqrepro) + set-up +
steps x seconds per step + evaluation (timed once per distinct point). Convergence runs add
their whole-split measurements. Prints a Markdown table per study and the total, in CPU
minutes; divide by the number of cores for the wall time of ``snakemake --cores all``.
Needs the prepared data sets under --data (``snakemake data_all`` or one run of the workflow).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from vqrepro import config as vqconfig


def start_up_seconds(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import vqrepro.train, vqrepro.evaluate"], check=True)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def timed_training(settings: dict, data_dir: Path, steps: int, evaluation: dict | None) -> tuple[float, float]:
    """(seconds of train_tokenizer with ``steps`` steps, seconds of the evaluation after it)."""
    from vqrepro.evaluate import evaluate_tokenizer
    from vqrepro.train import train_tokenizer

    probe = json.loads(json.dumps(settings))
    probe["training"].update(steps=steps, checkpoint_every=10**9, log_every=max(1, steps))
    probe["training"].pop("eval_every", None)
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        ckpt = train_tokenizer(probe, data_dir, out, threads=1, device="cpu")
        trained = time.perf_counter()
        if evaluation is not None:
            evaluate_tokenizer(ckpt, data_dir, Path(out) / "metrics.json", evaluation, threads=1, device="cpu")
        return trained - began, time.perf_counter() - trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data")
    parser.add_argument("--probe-steps", type=int, nargs=2, default=[10, 30])
    parser.add_argument("--studies", nargs="*", help="default: the config's run_studies")
    args = parser.parse_args()
    cfg = vqconfig.load(args.params)
    evaluation = vqconfig.eval_settings(cfg)
    short, long = args.probe_steps
    start_up = start_up_seconds()

    per_study: dict[str, list[float]] = defaultdict(list)
    measured: dict[str, tuple[float, float, float]] = {}
    for study in args.studies or cfg["run_studies"]:
        for key in vqconfig.grid(cfg, study):
            settings = vqconfig.train_settings(cfg, key)
            identity = json.dumps({**settings, "seed": 0, "training": {**settings["training"], "steps": 0}}, sort_keys=True)
            if identity not in measured:
                data_dir = Path(args.data) / key.dataset
                t_short, evaluate = timed_training(settings, data_dir, short, evaluation)
                t_long, _ = timed_training(settings, data_dir, long, None)
                per_step = max(t_long - t_short, 0.0) / (long - short)
                measured[identity] = (per_step, max(t_short - short * per_step, 0.0), evaluate)
                print(f"{key.path}: {per_step * 1000:.0f} ms/step, set-up {measured[identity][1]:.1f} s, "
                      f"evaluation {evaluate:.1f} s", file=sys.stderr, flush=True)
            per_step, setup, evaluate = measured[identity]
            steps = settings["training"]["steps"]
            eval_every = settings["training"].get("eval_every", 0)
            curve_points = steps // eval_every if eval_every else 0
            per_study[study].append(start_up + setup + steps * per_step + (1 + curve_points) * evaluate)

    print(f"start-up per job (import torch + vqrepro): {start_up:.1f} s\n")
    print("| study | grid points | CPU minutes | of which start-up |\n|---|---|---|---|")
    total = 0.0
    for study, seconds in per_study.items():
        total += sum(seconds)
        print(f"| {study} | {len(seconds)} | {sum(seconds) / 60:.1f} | {len(seconds) * start_up / 60:.1f} |")
    jobs = sum(len(s) for s in per_study.values())
    print(f"| all | {jobs} | {total / 60:.1f} | {jobs * start_up / 60:.1f} |")


if __name__ == "__main__":
    main()
