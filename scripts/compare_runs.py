"""Do two runs agree run by run? Compare the metrics of every grid point two runs/ folders share.

    python scripts/compare_runs.py RUNS_A RUNS_B [--only LIST]

For every runs/<study>/.../metrics.json present in both folders (or only those named, one path
relative to the runs/ folder per line of LIST), compares the metric values: the same code on the
CPU with the same seed gives bit-identical numbers, so any difference is listed with its size.
Timings and provenance are not compared. Prints a summary line per study; exits 1 if any differ.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path


def metric_values(path: Path) -> dict[str, float | None]:
    return json.loads(path.read_text())["metrics"]


def differences(a: dict, b: dict) -> dict[str, float]:
    """{metric: |a - b|} for each metric whose values are not identical (None and NaN equal themselves)."""
    out = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        same = x == y or (x is None and y is None) or (
            isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        if not same:
            out[name] = abs(x - y) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else math.inf
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_a", type=Path)
    parser.add_argument("runs_b", type=Path)
    parser.add_argument("--only", type=Path, help="a file listing metrics.json paths relative to the runs folders")
    args = parser.parse_args()
    if args.only:
        wanted = [Path(line.strip()) for line in args.only.read_text().splitlines() if line.strip()]
    else:
        wanted = sorted(p.relative_to(args.runs_a) for p in args.runs_a.rglob("metrics.json"))
    per_study: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # compared, identical, missing in B
    differing = []
    for rel in wanted:
        study = rel.parts[0]
        a, b = args.runs_a / rel, args.runs_b / rel
        if not (a.exists() and b.exists()):
            per_study[study][2] += 1
            continue
        per_study[study][0] += 1
        diff = differences(metric_values(a), metric_values(b))
        if diff:
            differing.append((rel, diff))
        else:
            per_study[study][1] += 1
    print("| study | runs compared | bit-identical metrics | absent from one side |\n|---|---|---|---|")
    for study, (compared, identical, absent) in sorted(per_study.items()):
        print(f"| {study} | {compared} | {identical} | {absent} |")
    for rel, diff in differing:
        print(f"differs: {rel.parent}: " + ", ".join(f"{m} by {d:.3g}" for m, d in diff.items()))
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
