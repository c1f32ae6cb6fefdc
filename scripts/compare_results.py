"""Do two runs agree? Compare the study tables of two results/ folders, row by row.

    python scripts/compare_results.py OLD_RESULTS NEW_RESULTS [STUDY ...]

For every study CSV present in both (results/tables/<study>.csv, one row per quantizer x K x D
[x batch]), and every metric with a mean and a std: the largest difference of the means, and
whether each difference lies within the seed spread (|mean_a - mean_b| <= max(std_a, std_b)).
Bit-identical runs show 0. Prints a Markdown table; exits 1 if any mean is outside the spread.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

KEYS = ["quantizer", "codebook_size", "code_dim", "batch_size", "prior"]  # every axis a row can vary on


def compare(old: Path, new: Path, study: str) -> list[str]:
    a, b = pd.read_csv(old / "tables" / f"{study}.csv"), pd.read_csv(new / "tables" / f"{study}.csv")
    keys = [k for k in KEYS if k in a and k in b]
    both = a.merge(b, on=keys, suffixes=("_a", "_b"))
    rows = []
    for metric in sorted({c[:-5] for c in a.columns if c.endswith("_mean")} & {c[:-5] for c in b.columns if c.endswith("_mean")}):
        ma, mb = both[f"{metric}_mean_a"], both[f"{metric}_mean_b"]
        if ma.isna().all() and mb.isna().all():
            continue
        diff = (ma - mb).abs()
        spread = pd.concat([both[f"{metric}_std_a"], both[f"{metric}_std_b"]], axis=1).max(axis=1).fillna(0.0)
        outside = int((diff > spread + 1e-12).sum())
        identical = int((diff == 0).sum())
        rows.append(f"| {study} | {metric} | {len(both)} | {identical} | {diff.max():.4g} | {outside} |")
    return rows


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = Path(argv[0]), Path(argv[1])
    studies = argv[2:] or sorted(p.stem for p in (old / "tables").glob("*.csv") if (new / "tables" / p.name).exists())
    lines = ["| table | metric | rows in both | identical means | largest difference of means | outside the seed spread |",
             "|---|---|---|---|---|---|"]
    for study in studies:
        lines += compare(old, new, study)
    print("\n".join(lines))
    return 1 if any(not line.endswith("| 0 |") for line in lines[2:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
