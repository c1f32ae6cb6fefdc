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
    recorded = json.loads(path.read_text())
    counts, not_run = recorded["all"], recorded.get("not_run", 0)
    return (f"{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts.get('inconclusive', 0)} inconclusive, {counts['not measurable here']} not measurable here"
            + (f"; {not_run} not run in this configuration" if not_run else ""))


def _written_since(paths: list[Path], since: float | None) -> list[Path]:
    return [p for p in paths if p.exists() and (since is None or p.stat().st_mtime >= since)]


def run_summary(tables: list[str], run_dirs: list[str | Path], scale: str, results: str | Path = "results",
                succeeded: bool = True, since: float | None = None, place: str = ".") -> str:
    """A few lines: what was built, the claims' verdicts, failed grid points and where to look.

    ``since``: when this run started. A finished run reports every table of its targets (each is up
    to date with this config; ``place`` holds only this scale's files). A failed run reports only the
    files it wrote itself: what was on disk before proves nothing about this run."""
    results = Path(results)
    where = "" if place in ("", ".") else f"{place}/"
    present = [Path(t) for t in tables if Path(t).exists()]
    fresh = _written_since(present, since)
    figures = sorted((results / "figures").glob("*.png")) if (results / "figures").exists() else []
    claims = results / "metrics" / "claims.json"
    if succeeded:
        lines = [f"vqrepro: finished at {scale} scale in {where or './'}",
                 f"  tables: {len(present)} of {len(tables)} in {where}results/tables/ ({len(fresh)} written by this "
                 f"run, the rest up to date; paper tables indexed in {where}results/paper_vs_repro/index.md)",
                 f"  figures: {len(figures)} in {where}results/figures/"]
        lines.append(f"  claims: {claim_counts_text(results)} ({where}results/claims.md)" if claims.exists()
                     else f"  claims: {claim_counts_text(results)}")
    else:
        lines = [f"vqrepro: stopped with an error at {scale} scale in {where or './'}",
                 f"  written by this run: {len(fresh)} of {len(tables)} tables, "
                 f"{len(_written_since(figures, since))} figures (files from earlier runs are not counted)"]
        lines.append(f"  claims: {claim_counts_text(results)} ({where}results/claims.md)" if _written_since([claims], since)
                     else "  claims: not rebuilt by this run")
    failed = failed_points(run_dirs)
    if failed:
        lines.append(f"  failed grid points: {len(failed)}")
        lines += [f"    {where}{run}: {reason}" for run, reason in failed[:20]]
        if len(failed) > 20:
            lines.append(f"    ... and {len(failed) - 20} more (each has a {FAILURE_RECORD})")
        lines.append(f"  each failed job's log: {where}logs/runs/<the same path>/train.log")
    elif not succeeded:
        lines.append("  no grid point left a failure record: the failed job's log is named in Snakemake's error above")
    if where:  # paths given to Snakemake are read inside the workdir, so the same commands serve every scale
        lines += [f"  report with every table and figure: snakemake --report results/report.html with the same "
                  f"--configfile (written to {where}results/report.html)",
                  f"  metrics and figures in DVC: dvc metrics show {where}results/metrics; "
                  f"dvc plots show {where}results/figures/<name>.png"]
    else:
        lines.append("  report with every table and figure: snakemake --report results/report.html")
    return "\n".join(lines)
