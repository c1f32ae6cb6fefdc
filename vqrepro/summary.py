"""What a finished (or failed) run built, printed by the Snakefile's onsuccess / onerror handlers.

Reads only result files and run folders (no torch): the tables and figures the run's
targets name, the claim counts of results/metrics/claims.json, and every grid point
whose training left a failure record.
"""
from __future__ import annotations

import json
from pathlib import Path

from .runs import FAILURE_RECORD, METRICS, failure_reason


def failed_points(run_dirs: list[str | Path]) -> list[tuple[Path, str]]:
    """(run folder, one-line reason) of every grid point whose last attempt failed."""
    return [(run, failure_reason(run)) for run in map(Path, run_dirs)
            if (run / FAILURE_RECORD).exists() and not (run / METRICS).exists()]


def claim_counts_text(results: str | Path = "results") -> str:
    """'12 reproduced, 3 not reproduced, 2 inconclusive, 4 not measurable here', or why there are no counts yet.

    The statuses of vqrepro/claims.py; a claims.json written before "inconclusive" existed counts none."""
    path = Path(results) / "metrics" / "claims.json"
    if not path.exists():
        return "not checked yet (results/claims.md is built by the `claims` rule)"
    counts = json.loads(path.read_text())["all"]
    return (f"{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts.get('inconclusive', 0)} inconclusive, {counts['not measurable here']} not measurable here")


def _claim_line(results: Path) -> str:
    checked = (results / "metrics" / "claims.json").exists()
    return f"claims: {claim_counts_text(results)}" + (" (results/claims.md)" if checked else "")


def run_summary(tables: list[str], run_dirs: list[str | Path], scale: str, results: str | Path = "results",
                succeeded: bool = True) -> str:
    """A few lines: what was built, the claims' verdicts, failed grid points and where to look."""
    results = Path(results)
    built = [t for t in tables if Path(t).exists()]
    figures = sorted(str(p) for p in (results / "figures").glob("*.png")) if (results / "figures").exists() else []
    lines = [f"vqrepro: {'finished' if succeeded else 'stopped with an error'} at {scale} scale",
             f"  tables: {len(built)} of {len(tables)} in results/tables/ (paper tables indexed in "
             "results/paper_vs_repro/index.md)",
             f"  figures: {len(figures)} in results/figures/",
             f"  {_claim_line(results)}"]
    failed = failed_points(run_dirs)
    if failed:
        lines.append(f"  failed grid points: {len(failed)}")
        lines += [f"    {run}: {reason}" for run, reason in failed[:20]]
        if len(failed) > 20:
            lines.append(f"    ... and {len(failed) - 20} more (each has a {FAILURE_RECORD})")
        lines.append("  each failed job's log: logs/runs/<the same path>/train.log")
    elif not succeeded:
        lines.append("  no grid point left a failure record: the failed job's log is named in Snakemake's error above")
    lines.append("  report with every table and figure: snakemake --report results/report.html")
    return "\n".join(lines)
