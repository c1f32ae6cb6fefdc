"""Fixed cost of one pipeline job: interpreter + imports, before any data or compute.

    python benchmarks/job_overhead.py [--repeats 3]

Prints the median wall time of each start-up, and the number of processes the default
run starts (from `snakemake -n`), so the fixed share of a run can be worked out.
Run it on an idle machine: other load inflates every number.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

STARTS = {
    "python (no imports)": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "python -m vqrepro --version": [sys.executable, "-m", "vqrepro", "--version"],
    "python -m vqrepro report --help (a report job's start)": [sys.executable, "-m", "vqrepro", "report", "--help"],
    "import vqrepro.train, vqrepro.evaluate (a training job's start)":
        [sys.executable, "-c", "import vqrepro.train, vqrepro.evaluate"],
}


def median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def planned_jobs() -> dict[str, int]:
    out = subprocess.run(["snakemake", "-n", "--cores", "1", "--forceall"], capture_output=True, text=True).stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE) if m[1] != "total"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| start-up | seconds (median) |\n|---|---|")
    for name, cmd in STARTS.items():
        print(f"| {name} | {median_seconds(cmd, args.repeats):.2f} |")
    jobs = planned_jobs()
    print("\n| rule | jobs in the default run |\n|---|---|")
    for rule, n in sorted(jobs.items(), key=lambda item: -item[1]):
        print(f"| {rule} | {n} |")


if __name__ == "__main__":
    main()
