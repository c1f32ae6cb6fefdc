"""The papers' findings as checkable statements on our reproduction tables (``params.yaml: claims``).

A claim::

    - id: cvq_full_usage                      # unique
      paper: CVQ-VAE                          # the section of results/claims.md it is listed in
      statement: "CVQ-VAE uses nearly all of a 1024-code codebook where VQ-VAE uses under half"
      reproduction: cvq_fig1_usage            # a key of params.yaml: reproductions
      measurable_at: [paper]                  # optional: the scales it can be checked at (default: every scale)
      why_not_here: "ImageNet-1K is not bundled"   # required with measurable_at: shown at the other scales
      check: <condition>
      evidence: [<check>, ...]                # optional: declared checks, computed from result files
      note: "..."                             # optional prose: which reading of a method it uses, why; no results

Every number on the page is computed from result files. ``note`` and a check's ``why`` explain; they
may not state a result (a percentage in them is refused: declare a check instead).

Conditions (values and margins in our raw units: usage and accuracy are fractions, MSE is plain MSE):

- threshold  ``{row: SEL, metric: m, at_least|at_most|above|below: v}`` (exactly one of the four ops):
  decided by the 95 % Student-t interval on the row's mean over seeds; the evidence also counts the
  seeds that meet the threshold (from the table's per-seed ``<metric>_values`` column).
- comparison ``{metric: m, higher: [SEL_A, SEL_B], margin: 0}``: mean(A) > mean(B) + margin;
  ``lower``: mean(A) < mean(B) - margin. Decided by the 95 % Welch interval on mean(A) - mean(B).
- trend      ``{row: SEL, metric: m, along: axis, trend: increasing|decreasing}``: the rows matching SEL
  (all rows if ``row`` is left out), sorted by the axis (one of the reproduction's ``axes``); every step
  between neighbours must be strictly up (down), each step decided by its Welch interval.
- best       ``{best: {metric: m, row: SEL, among: SEL|null, lowest: true}}`` (or ``highest: true``): the row's
  mean is strictly lower (higher) than every other row matching ``among`` (null: every row), each pair by its
  Welch interval.
- ``{all: [cond, ...]}`` / ``{any: [cond, ...]}``, nestable.

A selector SEL maps summary columns (``row``, ``quantizer``, ``codebook_size``, ``code_dim``, ``batch_size``) to
values, e.g. ``{quantizer: cvq}`` or ``{row: VQVAE, codebook_size: 64}``; for threshold, comparison and best it
must match exactly one summary row (ValueError naming the claim and the selector otherwise).

Statuses: "reproduced" (the interval clears the bound in the claimed direction), "not reproduced" (it clears
it in the other direction), "inconclusive" (it contains the bound, or one seed was all there was; the result
says how many seeds per row would decide it at the observed spread) and "not measurable here" (a metric is
n/a or its runs failed, or the scale is not in ``measurable_at``). A claim whose reproduction this
configuration does not build is "not run in this configuration": listed apart, outside every count.
``all`` is not reproduced as soon as one part is not reproduced, reproduced when every part is; ``any``
the other way round; otherwise not measurable, else inconclusive.

Declared evidence checks (``evidence:``, each one of these plus an optional ``why``):

- ``settled: {study, row: SEL, metric: usage, split: train, last: 3, within: 0.02}``: the curves of
  ``results/tables/<study>_over_steps.csv`` (a convergence study) for the rows matching SEL changed by at
  most ``within`` over their last ``last`` measurements, on every seed. A run that has not settled makes a
  conclusive verdict inconclusive: it was read from a moving quantity.
- ``sensitivity: {reproduction, check: <condition>, label}``: a condition evaluated on another reproduction
  (another lr, schedule, anchor rule, seed set or reading of a method), reported beside the verdict.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import display, intervals
from .compare import norm_value
from .io import write_json
from .pages import write_markdown

STATUSES = ("reproduced", "not reproduced", "inconclusive", "not measurable here")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURABLE = STATUSES
# A claim whose reproduction this configuration does not build (its study is not in run_studies, as in a
# paper config that runs one paper's studies): listed apart, never counted among the verdicts.
NOT_RUN = "not run in this configuration"
CLAIM_KEYS = ("id", "paper", "statement", "reproduction", "check", "measurable_at", "why_not_here", "evidence", "note")
NO_EVIDENCE = ("no evidence checks declared: this miss has not been checked against faults of ours "
               "(schedule, learning rate, seeds)")
# Prose on the page explains; a result in it would go stale on the next run.
RESULT_IN_PROSE = re.compile(r"\d+(\.\d+)?\s?%")
THRESHOLD_OPS = {"at_least": "at least", "at_most": "at most", "above": "above", "below": "below"}
SELECTOR_COLUMNS = ("row", "quantizer", *display.AXES)
TRENDS = ("increasing", "decreasing")
# The thresholds that can decide something, in our raw units: (lowest, highest, lowest allowed
# itself, what the metric is). A usage "at_least: 0" always holds, "at_least: 95" never does.
THRESHOLD_RANGES = {
    **{m: (0.0, 1.0, False, f"{m} is a fraction (95% is 0.95)") for m in display.FRACTION_METRICS},
    "ssim": (-1.0, 1.0, True, "SSIM lies between -1 and 1"),
    "perplexity": (1.0, math.inf, True, "perplexity is at least 1 (a single code in use)"),
    **{m: (0.0, math.inf, False, f"{m} is positive") for m in ("mse", "lpips", "rfid")},
}


# --------------------------------------------------------------------------- validation


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The type of each selector column's value: a grid axis is a positive integer, a row or preset a name.
SELECTOR_TYPES = {"row": str, "quantizer": str, "codebook_size": int, "code_dim": int, "batch_size": int}


def _check_selector(where: str, sel, spec: dict, *, optional: bool = False, repro: str = "") -> None:
    if sel is None and optional:
        return
    if not isinstance(sel, dict) or not sel:
        raise ValueError(f"{where}: expected a selector, a mapping of summary columns {list(SELECTOR_COLUMNS)} "
                         f"to values such as {{quantizer: vq}}, got {sel!r}")
    for col, value in sel.items():
        if col not in SELECTOR_COLUMNS:
            raise ValueError(f"{where}.{col}: not a summary column; select on {list(SELECTOR_COLUMNS)}")
        wanted = SELECTOR_TYPES[col]
        if wanted is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{where}.{col}: expected a positive integer (a value of the study's grid), got {value!r}")
        if wanted is str and not isinstance(value, str):
            raise ValueError(f"{where}.{col}: expected a name (a preset or the paper's row label), got {value!r}")
        if col == "quantizer" and spec.get("rows") and value not in spec["rows"]:
            raise ValueError(f"{where}.quantizer: {value!r} is not one of the rows of reproductions.{repro} "
                             f"{list(spec['rows'])}; use one of those presets")


def _check_one_row(where: str, sel: dict, repro: str, grid: list[dict] | None) -> None:
    """A selector that must pick one row may match none at a smaller scale's grid, never several."""
    if not grid or not isinstance(sel, dict):
        return
    hits = [r for r in grid if all(str(r.get(col)) == str(value) for col, value in sel.items())]
    if len(hits) > 1:
        names = ", ".join(f"{h['quantizer']} K={h['codebook_size']} D={h['code_dim']}" for h in hits[:4])
        narrower = [c for c in ("codebook_size", "code_dim", "batch_size") if c not in sel
                    and len({h[c] for h in hits}) > 1]
        raise ValueError(f"{where}: {sel} matches {len(hits)} rows of reproductions.{repro} ({names}); a threshold, "
                         f"comparison or best needs one row: add {' and '.join(narrower) or 'a column'} to the selector")


def _check_metric(where: str, cond: dict, spec: dict, repro: str) -> None:
    metric = cond.get("metric")
    metrics = list(spec.get("metrics") or [])
    if metric not in metrics:
        raise ValueError(f"{where}.metric: {metric!r} is not measured by reproductions.{repro} "
                         f"(metrics {metrics}); use one of those or add it there")


def _check_keys(where: str, cond: dict, allowed: set[str], kind: str) -> None:
    extra = sorted(set(cond) - allowed)
    if extra:
        raise ValueError(f"{where}.{extra[0]}: not a key of a {kind} condition; its keys are {sorted(allowed)}")


def _check_threshold_range(where: str, metric: str, value: float) -> None:
    if metric not in THRESHOLD_RANGES:
        return
    low, high, low_allowed, what = THRESHOLD_RANGES[metric]
    if not (low <= value <= high) or (value == low and not low_allowed):
        bounds = (f"{'at least' if low_allowed else 'above'} {low:g}" + (f" and at most {high:g}" if high < math.inf else ""))
        raise ValueError(f"{where}: {value!r} cannot decide the claim: {what}, so a threshold must be {bounds}")


def _check_condition(where: str, cond, spec: dict, repro: str, grid: list[dict] | None = None) -> None:
    if not isinstance(cond, dict) or not cond:
        raise ValueError(f"{where}: expected a condition (a mapping), got {cond!r}")
    for group in ("all", "any"):
        if group in cond:
            _check_keys(where, cond, {group}, f"'{group}'")
            parts = cond[group]
            if not isinstance(parts, list) or not parts:
                raise ValueError(f"{where}.{group}: expected a non-empty list of conditions")
            for i, part in enumerate(parts):
                _check_condition(f"{where}.{group}[{i}]", part, spec, repro, grid)
            return
    if "best" in cond:
        _check_keys(where, cond, {"best"}, "'best'")
        inner, where = cond["best"], f"{where}.best"
        if not isinstance(inner, dict):
            raise ValueError(f"{where}: expected {{metric, row, among, lowest|highest: true}}")
        _check_keys(where, inner, {"metric", "row", "among", "lowest", "highest"}, "'best'")
        _check_metric(where, inner, spec, repro)
        _check_selector(f"{where}.row", inner.get("row"), spec, repro=repro)
        _check_one_row(f"{where}.row", inner.get("row"), repro, grid)
        _check_selector(f"{where}.among", inner.get("among"), spec, optional=True, repro=repro)
        if [bool(inner.get("lowest")), bool(inner.get("highest"))].count(True) != 1:
            raise ValueError(f"{where}: say which end is best with exactly one of 'lowest: true' or 'highest: true'")
        return
    if "higher" in cond or "lower" in cond:
        _check_keys(where, cond, {"metric", "higher", "lower", "margin"}, "comparison")
        if "higher" in cond and "lower" in cond:
            raise ValueError(f"{where}: use either 'higher' or 'lower', not both")
        op = "higher" if "higher" in cond else "lower"
        _check_metric(where, cond, spec, repro)
        pair = cond[op]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"{where}.{op}: expected two selectors [A, B] (A is claimed {op} than B)")
        for i, sel in enumerate(pair):
            _check_selector(f"{where}.{op}[{i}]", sel, spec, repro=repro)
            _check_one_row(f"{where}.{op}[{i}]", sel, repro, grid)
        if "margin" in cond and not (_is_number(cond["margin"]) and cond["margin"] >= 0):
            raise ValueError(f"{where}.margin: expected a number >= 0 in the metric's raw units")
        if cond["metric"] in display.FRACTION_METRICS and cond.get("margin", 0) >= 1:
            raise ValueError(f"{where}.margin: {cond['margin']} can never separate two values of {cond['metric']}, "
                             "a fraction (0 to 1); give the gap as a fraction too (5 points is 0.05)")
        return
    if "trend" in cond or "along" in cond:
        _check_keys(where, cond, {"row", "metric", "along", "trend"}, "trend")
        _check_metric(where, cond, spec, repro)
        _check_selector(f"{where}.row", cond.get("row"), spec, optional=True, repro=repro)
        axes = list(spec.get("axes") or [])
        if cond.get("along") not in axes:
            raise ValueError(f"{where}.along: {cond.get('along')!r} is not an axis of reproductions.{repro} "
                             f"(axes {axes}); a trend runs along one of those")
        if cond.get("trend") not in TRENDS:
            raise ValueError(f"{where}.trend: expected one of {list(TRENDS)}, got {cond.get('trend')!r}")
        return
    ops = [op for op in THRESHOLD_OPS if op in cond]
    if ops or "row" in cond or "metric" in cond:
        _check_keys(where, cond, {"row", "metric", *THRESHOLD_OPS}, "threshold")
        if len(ops) != 1:
            raise ValueError(f"{where}: a threshold needs exactly one of {list(THRESHOLD_OPS)}, got {ops or 'none'}")
        _check_metric(where, cond, spec, repro)
        _check_selector(f"{where}.row", cond.get("row"), spec, repro=repro)
        _check_one_row(f"{where}.row", cond.get("row"), repro, grid)
        if not _is_number(cond[ops[0]]):
            raise ValueError(f"{where}.{ops[0]}: expected a number in the metric's raw units")
        _check_threshold_range(f"{where}.{ops[0]}", cond["metric"], cond[ops[0]])
        return
    raise ValueError(f"{where}: unknown condition {sorted(cond)}; the kinds are all, any, best, a threshold "
                     f"({', '.join(THRESHOLD_OPS)}), a comparison (higher, lower) and a trend (along + trend)")


def _check_prose(where: str, text) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: expected text")
    found = RESULT_IN_PROSE.search(text)
    if found:
        raise ValueError(f"{where}: {found.group(0)!r} states a result in prose, which goes stale on the next run; "
                         "declare a check under evidence (settled, sensitivity) and let the page compute it")


def _check_evidence(at: str, entries, reproductions: dict[str, dict], curves: set[str] | None,
                    rows: dict[str, list[dict]]) -> None:
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{at}.evidence: expected a non-empty list of checks ({sorted(EVIDENCE_CHECKS)})")
    for i, entry in enumerate(entries):
        where = f"{at}.evidence[{i}]"
        kinds = [k for k in EVIDENCE_CHECKS if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1:
            raise ValueError(f"{where}: expected exactly one of {sorted(EVIDENCE_CHECKS)} (and an optional why)")
        _check_keys(where, entry, {kinds[0], "why"}, "evidence")
        if "why" in entry:
            _check_prose(f"{where}.why", entry["why"])
        spec, where = entry[kinds[0]], f"{where}.{kinds[0]}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a mapping")
        if kinds[0] == "settled":
            _check_keys(where, spec, {"study", "row", "metric", "split", "last", "within"}, "settled")
            if not isinstance(spec.get("study"), str):
                raise ValueError(f"{where}.study: expected the name of a convergence study, got {spec.get('study')!r}")
            if curves is not None and spec["study"] not in curves:
                raise ValueError(f"{where}.study: {spec.get('study')!r} is not a convergence study (one whose "
                                 f"training preset sets eval_every); those are {sorted(curves)}")
            _check_selector(f"{where}.row", spec.get("row"), {}, optional=True)  # a curve's rows: any preset
            if spec.get("metric", "usage") not in ("usage", "perplexity", "mse"):
                raise ValueError(f"{where}.metric: a convergence curve has usage, perplexity and mse")
            if spec.get("split", "train") not in ("train", "test"):
                raise ValueError(f"{where}.split: expected train or test")
            last = spec.get("last", 3)
            if not isinstance(last, int) or isinstance(last, bool) or last < 2:
                raise ValueError(f"{where}.last: expected a whole number of measurements, 2 or more")
            if not _is_number(spec.get("within")) or spec["within"] < 0:
                raise ValueError(f"{where}.within: expected the largest allowed change, a number >= 0 in raw units")
        else:
            _check_keys(where, spec, {"reproduction", "check", "label"}, "sensitivity")
            name = spec.get("reproduction")
            if not isinstance(name, str) or name not in reproductions:
                raise ValueError(f"{where}.reproduction: {name!r} is not in reproductions; name one of those")
            if "label" in spec:
                _check_prose(f"{where}.label", spec["label"])
            if "check" not in spec:
                raise ValueError(f"{where}.check: missing; give the condition to evaluate on {name}")
            _check_condition(f"{where}.check", spec["check"], reproductions[name], name, rows.get(name))


def check_claims(claims: list[dict], reproductions: dict[str, dict], curves: set[str] | None = None,
                 rows: dict[str, list[dict]] | None = None) -> None:
    """Validate ``params.yaml: claims`` against the reproductions; ValueError naming ``claims[i] (id).key``.

    ``curves``: the convergence studies a ``settled`` check may name; ``rows``: each reproduction's table rows at
    this scale (vqrepro.config), against which a one-row selector must not match several (None: not checked)."""
    rows = rows or {}
    if not isinstance(claims, list):
        raise ValueError(f"claims: expected a list of claims, got {type(claims).__name__}")  # noqa: TRY004
    seen: dict[str, int] = {}
    for i, claim in enumerate(claims):
        if not isinstance(claim, dict):
            raise ValueError(f"claims[{i}]: expected a mapping with keys {list(CLAIM_KEYS)}")  # noqa: TRY004
        cid = claim.get("id")
        at = f"claims[{i}] ({cid})"
        extra = sorted(set(claim) - set(CLAIM_KEYS))
        if extra:
            raise ValueError(f"{at}.{extra[0]}: unknown key; a claim's keys are {list(CLAIM_KEYS)}")
        for key in ("id", "paper", "statement", "reproduction"):
            if not isinstance(claim.get(key), str) or not claim[key].strip():
                raise ValueError(f"{at}.{key}: missing; give it as text")
        if cid in seen:
            raise ValueError(f"{at}.id: {cid!r} is already the id of claims[{seen[cid]}]; ids must be unique")
        seen[cid] = i
        repro = claim["reproduction"]
        if repro not in reproductions:
            raise ValueError(f"{at}.reproduction: {repro!r} is not in reproductions "
                             f"({sorted(reproductions)}); name one of those")
        if "measurable_at" in claim:
            scales = claim["measurable_at"]
            if not isinstance(scales, list) or not scales or not all(isinstance(s, str) for s in scales):
                raise ValueError(f"{at}.measurable_at: expected a non-empty list of scale names")
            if not isinstance(claim.get("why_not_here"), str) or not claim["why_not_here"].strip():
                raise ValueError(f"{at}.why_not_here: required with measurable_at; say why the other scales "
                                 "cannot check it")
        if "check" not in claim:
            raise ValueError(f"{at}.check: missing; give the condition that decides the claim")
        _check_condition(f"{at}.check", claim["check"], reproductions[repro], repro, rows.get(repro))
        if "evidence" in claim:
            _check_evidence(at, claim["evidence"], reproductions, curves, rows)
        if "note" in claim:
            _check_prose(f"{at}.note", claim["note"])


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Result:
    status: str
    evidence: str
    reason: str = ""
    #: for an inconclusive result: seeds per row that would decide it at the observed spread (None: unknown)
    seeds_to_decide: int | None = None


def _show(metric: str, value: float, signed: bool = False) -> str:
    shown = display.metric(metric)
    if math.isnan(value):
        return "n/a"
    return f"{value * shown.scale:{'+' if signed else ''}.{shown.decimals}f}{shown.suffix}"


def _show_interval(metric: str, interval: intervals.Interval, signed: bool = False) -> str:
    if not interval.known:
        return "no interval: one seed"
    return f"95 % CI {_show(metric, interval.low, signed)} to {_show(metric, interval.high, signed)}"


def _select(summary: pd.DataFrame, sel: dict | None, cid: str) -> pd.DataFrame:
    mask = pd.Series(True, index=summary.index)
    for col, value in (sel or {}).items():
        if col not in summary:
            raise ValueError(f"claim {cid}: selector {sel} names column {col!r}, which the summary lacks "
                             f"(columns {list(summary.columns)})")
        mask &= summary[col].map(norm_value) == norm_value(value)
    return summary[mask]


class GridPointAbsent(LookupError):
    """The claim names a grid point this scale's study does not train (e.g. the smoke scale's smaller grid)."""


def _one(summary: pd.DataFrame, sel: dict, cid: str) -> pd.Series:
    hits = _select(summary, sel, cid)
    if len(hits) == 0:
        raise GridPointAbsent(f"no row {dict(sorted(sel.items()))} in this scale's table: that grid point was not "
                              "trained at this scale")
    if len(hits) > 1:
        names = ", ".join(_name(r, None) for _, r in hits.iterrows())
        raise ValueError(f"claim {cid}: selector {sel} must match exactly one row of the summary, matched "
                         f"{len(hits)}: {names}; add columns (e.g. codebook_size) to narrow it")
    return hits.iloc[0]


def _name(row: pd.Series, sel: dict | None) -> str:
    label = str(row.get("row", row.get("quantizer", "?")))
    if "quantizer" in row and str(row["quantizer"]) != label:
        label += f" [{row['quantizer']}]"
    extra = [f"{c}={norm_value(row[c])}" for c in display.AXES if c in row and (sel is None or c in sel)]
    return label + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class _Cell:
    """One row's metric over its seeds, as the reproduction table records it."""
    text: str
    mean: float
    std: float
    seeds: int
    values: tuple[float, ...] | None  # per seed, in seed order; None in a table built without them
    reason: str  # why it is not measurable, or ""


def _per_seed(row: pd.Series, metric: str) -> tuple[float, ...] | None:
    raw = row.get(f"{metric}_values")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return tuple(float(v) for v in str(raw).split(";") if v != "")


def _cell(row: pd.Series, metric: str, missing: dict[str, str], sel: dict | None) -> _Cell:
    seeds = int(row["seeds"]) if "seeds" in row and not pd.isna(row["seeds"]) else 1
    mean = float(row.get(f"{metric}_mean", math.nan))
    std = float(row.get(f"{metric}_std", math.nan))
    name = _name(row, sel)
    if seeds == 0:
        return _Cell(f"{name} failed", mean, std, 0, None, f"{_name(row, None)}: every seed failed")
    if math.isnan(mean):
        return _Cell(f"{name} n/a", mean, std, seeds, None,
                     f"{metric} n/a: {missing.get(metric, 'not computable (no reason recorded)')}")
    text = f"{name} {_show(metric, mean)}"
    if seeds > 1 and not math.isnan(std):
        text += f" ± {_show(metric, std)}"
    text += f" ({seeds} seed{'s' if seeds != 1 else ''})"
    return _Cell(text, mean, std, seeds, _per_seed(row, metric), "")


ONE_SEED = "a single seed gives no interval, so it cannot decide a claim; give the configuration three or more seeds"


def _undecided(evidence: str, reason: str, seeds: int | None) -> _Result:
    return _Result(INCONCLUSIVE, evidence, reason, seeds)


def _decided(side: bool | None, evidence: str, seeds_needed: int | None) -> _Result:
    if side is None:
        more = (f"about {seeds_needed} seeds per row would decide it at the observed spread" if seeds_needed
                else "no number of seeds decides it at the observed means")
        return _undecided(evidence, f"the 95 % interval contains the claimed bound; {more}", seeds_needed)
    return _Result(REPRODUCED if side else NOT_REPRODUCED, evidence)


def _threshold(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    metric = cond["metric"]
    op = next((o for o in THRESHOLD_OPS if o in cond), None)
    if op is None or "row" not in cond or "metric" not in cond:
        raise ValueError(f"claim {cid}: unknown condition {sorted(cond)}; run check_claims on the claims first")
    limit = float(cond[op])
    cell = _cell(_one(summary, cond["row"], cid), metric, missing, cond["row"])
    required = f"required {THRESHOLD_OPS[op]} {_show(metric, limit)}"
    if cell.reason:
        return _Result(NOT_MEASURABLE, f"{metric}: {cell.text}; {required}", cell.reason)
    interval = intervals.mean_interval(cell.mean, cell.std, cell.seeds)
    meets = {"at_least": limit.__le__, "at_most": limit.__ge__, "above": limit.__lt__, "below": limit.__gt__}[op]
    if cell.values is None:
        count = "per-seed values not recorded in this table"
    else:
        count = f"{sum(map(meets, cell.values))} of {len(cell.values)} seeds meet it"
    evidence = f"{metric}: {cell.text}, {_show_interval(metric, interval)}; {required}; {count}"
    if cell.seeds < 2:
        return _undecided(evidence, ONE_SEED, None)
    above, strict = op in ("at_least", "above"), op in ("above", "below")
    side = intervals.side(interval, limit, above=above, strict=strict)
    return _decided(side, evidence, intervals.seeds_for_mean(cell.mean, cell.std, limit))


def _difference(metric: str, a: _Cell, b: _Cell, claimed_above: bool, bound: float) -> tuple[str, bool | None, int | None]:
    """Text, side and seeds-to-decide of the Welch interval on mean(a) - mean(b) against ``bound``."""
    interval = intervals.difference_interval(a.mean, a.std, a.seeds, b.mean, b.std, b.seeds)
    text = f"difference {_show(metric, interval.estimate, signed=True)} ({_show_interval(metric, interval, signed=True)})"
    side = intervals.side(interval, bound, above=claimed_above, strict=True)
    return text, side, intervals.seeds_for_difference(interval.estimate, a.std, b.std, bound)


def _combine_steps(evidence: str, sides: list[bool | None], seeds: list[int | None], one_seed: bool) -> _Result:
    """Several comparisons that must all hold (a trend's steps, a best row against each other row)."""
    if False in sides:
        return _Result(NOT_REPRODUCED, evidence)
    if one_seed:
        return _undecided(evidence, ONE_SEED, None)
    if all(s is True for s in sides):
        return _Result(REPRODUCED, evidence)
    needed = [n for s, n in zip(sides, seeds) if s is None]
    most = None if None in needed else max(needed)
    return _decided(None, evidence, most)


def _comparison(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    metric = cond["metric"]
    op = "higher" if "higher" in cond else "lower"
    margin = float(cond.get("margin", 0.0))
    sel_a, sel_b = cond[op]
    a = _cell(_one(summary, sel_a, cid), metric, missing, sel_a)
    b = _cell(_one(summary, sel_b, cid), metric, missing, sel_b)
    claimed = f"claimed the first {op}" + (f" by more than {_show(metric, margin)}" if margin else "")
    reason = "; ".join(dict.fromkeys(r for r in (a.reason, b.reason) if r))
    if reason:
        return _Result(NOT_MEASURABLE, f"{metric}: {a.text} vs {b.text}; {claimed}", reason)
    bound = margin if op == "higher" else -margin
    text, side, seeds = _difference(metric, a, b, op == "higher", bound)
    evidence = f"{metric}: {a.text} vs {b.text}; {text}; {claimed}"
    if min(a.seeds, b.seeds) < 2:
        return _undecided(evidence, ONE_SEED, None)
    return _decided(side, evidence, seeds)


def _trend(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    metric, axis, direction = cond["metric"], cond["along"], cond["trend"]
    sel = cond.get("row")
    rows = _select(summary, sel, cid)
    if axis not in rows:
        raise ValueError(f"claim {cid}: the summary has no column {axis!r} to run the trend along")
    if rows[axis].map(norm_value).duplicated().any():
        raise ValueError(f"claim {cid}: selector {sel} leaves several rows per {axis} value; narrow it so each "
                         f"{axis} appears once")
    rows = rows.sort_values(axis, kind="stable")
    cells = [(norm_value(row[axis]), _cell(row, metric, missing, {})) for _, row in rows.iterrows()]
    if not sel:
        who = "all rows"
    elif len(rows) and rows.get("row", rows.get("quantizer")).nunique() == 1:
        who = _name(rows.iloc[0], {})
    else:
        who = f"the rows matching {sel}"
    points = []
    for value, cell in cells:
        shown = "failed" if cell.seeds == 0 else _show(metric, cell.mean)
        if cell.seeds > 1 and not math.isnan(cell.std):
            shown += f" ± {_show(metric, cell.std)}"
        points.append(f"{value}: {shown}")
    evidence = f"{metric} of {who} along {axis}: " + ", ".join(points) + f"; claimed strictly {direction}"
    if len(cells) < 2:
        return _Result(NOT_MEASURABLE, evidence, f"needs two or more {axis} values, the summary has {len(cells)}")
    reasons = [cell.reason for _, cell in cells if cell.reason]
    if reasons:
        return _Result(NOT_MEASURABLE, evidence, "; ".join(dict.fromkeys(reasons)))
    steps, sides, seeds = [], [], []
    for (v0, c0), (v1, c1) in itertools.pairwise(cells):
        text, side, needed = _difference(metric, c1, c0, direction == "increasing", 0.0)
        steps.append(f"{v0} to {v1}: {text}")
        sides.append(side)
        seeds.append(needed)
    evidence += "; steps: " + "; ".join(steps)
    return _combine_steps(evidence, sides, seeds, min(c.seeds for _, c in cells) < 2)


def _best(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    spec = cond["best"]
    metric, lowest = spec["metric"], bool(spec.get("lowest"))
    target = _one(summary, spec["row"], cid)
    pool = _select(summary, spec.get("among"), cid)
    if target.name not in pool.index:
        raise ValueError(f"claim {cid}: best.row {spec['row']} is not among best.among {spec.get('among')}")
    best = _cell(target, metric, missing, spec["row"])
    others = [_cell(row, metric, missing, None) for idx, row in pool.iterrows() if idx != target.name]
    which = "lowest" if lowest else "highest"
    evidence = f"{metric}: {best.text}, claimed {which} of {len(pool)} rows"
    reasons = [c.reason for c in (best, *others) if c.reason]
    if reasons:
        return _Result(NOT_MEASURABLE, evidence + "; others: " + (", ".join(c.text for c in others) or "none"),
                       "; ".join(dict.fromkeys(reasons)))
    parts, sides, seeds = [], [], []
    for other in others:
        text, side, needed = _difference(metric, best, other, not lowest, 0.0)
        parts.append(f"{other.text}: {text}")
        sides.append(side)
        seeds.append(needed)
    evidence += "; against " + ("; ".join(parts) or "no other row")
    return _combine_steps(evidence, sides, seeds, min(c.seeds for c in (best, *others)) < 2)


def _combine(group: str, parts: list[_Result]) -> str:
    """The status of ``all`` / ``any`` over its parts' statuses."""
    statuses = {p.status for p in parts}
    decisive, fallback = (NOT_REPRODUCED, REPRODUCED) if group == "all" else (REPRODUCED, NOT_REPRODUCED)
    for status in (decisive, NOT_MEASURABLE, INCONCLUSIVE):
        if status in statuses:
            return status
    return fallback


def _evaluate(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    for group in ("all", "any"):
        if group in cond:
            parts = [_evaluate(c, summary, missing, cid) for c in cond[group]]
            status = _combine(group, parts)
            # each part ends in what it decided; the ones that did not decide say so
            evidence = f"; {'and' if group == 'all' else 'or'} ".join(
                p.evidence + ("" if p.status in (REPRODUCED, NOT_REPRODUCED) else f" ({p.status})") for p in parts)
            undecided = [p for p in parts if p.status == status] if status in (INCONCLUSIVE, NOT_MEASURABLE) else []
            reason = "; ".join(dict.fromkeys(p.reason for p in undecided if p.reason))
            needed = [p.seeds_to_decide for p in undecided]
            seeds = None if not needed or None in needed else max(needed)
            return _Result(status, evidence, reason, seeds)
    if "best" in cond:
        return _best(cond, summary, missing, cid)
    if "higher" in cond or "lower" in cond:
        return _comparison(cond, summary, missing, cid)
    if "trend" in cond:
        return _trend(cond, summary, missing, cid)
    return _threshold(cond, summary, missing, cid)


# --------------------------------------------------------------------------- declared evidence checks


@dataclass(frozen=True)
class ResultFiles:
    """What the claims rule reads: each built reproduction's summary and n/a reasons, each convergence curve."""
    summaries: dict[str, pd.DataFrame | None]
    missing: dict[str, dict[str, str]]
    curves: dict[str, pd.DataFrame | None]


def _settled(spec: dict, files: ResultFiles, cid: str) -> dict:
    """Whether the runs' curves moved by at most ``within`` over their last ``last`` measurements."""
    study, metric, split = spec["study"], spec.get("metric", "usage"), spec.get("split", "train")
    last, within = int(spec.get("last", 3)), float(spec["within"])
    label = f"settled: {metric} ({split} split) in {study}"
    curves = files.curves.get(study)
    if curves is None:
        return {"kind": "settled", "label": label, "status": NOT_MEASURABLE,
                "text": f"the convergence study {study} is not run in this configuration"}
    rows = _select(curves[curves["split"] == split], spec.get("row"), cid)
    if rows.empty:
        return {"kind": "settled", "label": label, "status": NOT_MEASURABLE,
                "text": f"no curve of {spec.get('row')} in results/tables/{study}_over_steps.csv"}
    settled, texts = True, []
    for seed, curve in rows.groupby("seed", sort=True):
        tail = curve.sort_values("step").tail(last)
        move = float(tail[metric].max() - tail[metric].min())
        settled &= move <= within and len(tail) == last  # a curve shorter than `last` cannot show it settled
        texts.append(f"seed {seed}: {_show(metric, float(tail[metric].iloc[-1]))} at step {int(tail['step'].iloc[-1])}, "
                     f"moved {_show(metric, move)} over steps {int(tail['step'].iloc[0])}-{int(tail['step'].iloc[-1])}")
    who = _name(rows.iloc[0], spec.get("row"))
    text = (f"{who}, last {last} measurements, allowed change {_show(metric, within)}: " + "; ".join(texts))
    return {"kind": "settled", "label": label, "status": "settled" if settled else "not settled", "text": text}


def _sensitivity(spec: dict, files: ResultFiles, cid: str) -> dict:
    """The claim's condition (or another) under another reproduction: another lr, length, anchor rule, seed set."""
    name = spec["reproduction"]
    label = f"sensitivity: {spec.get('label', name)}"
    summary = files.summaries.get(name)
    if summary is None:
        return {"kind": "sensitivity", "label": label, "status": NOT_MEASURABLE,
                "text": f"reproduction {name} is not built in this configuration"}
    try:
        result = _evaluate(spec["check"], summary, files.missing.get(name, {}), cid)
    except GridPointAbsent as absent:
        return {"kind": "sensitivity", "label": label, "status": NOT_MEASURABLE, "text": str(absent)}
    text = f"`{name}`: {result.evidence}" + (f" ({result.reason})" if result.reason else "")
    return {"kind": "sensitivity", "label": label, "status": result.status, "text": text}


EVIDENCE_CHECKS = {"settled": _settled, "sensitivity": _sensitivity}


def evaluate_evidence(claim: dict, files: ResultFiles) -> list[dict]:
    """Each declared check of the claim: {kind, label, status, text, why}, computed from the result files."""
    out = []
    for entry in claim.get("evidence") or []:
        kind = next(k for k in EVIDENCE_CHECKS if k in entry)
        out.append({**EVIDENCE_CHECKS[kind](entry[kind], files, claim.get("id", "?")), "why": entry.get("why", "")})
    return out


# --------------------------------------------------------------------------- one claim


def evaluate_claim(claim: dict, summary: pd.DataFrame | None, missing: dict[str, str], scale: str,
                   files: ResultFiles | None = None) -> dict:
    """One claim at one scale: ``{id, paper, statement, reproduction, status, evidence, reason, seeds_to_decide,
    checks, note}``. ``files`` holds what the declared evidence checks read (other reproductions, curves)."""
    out = {key: claim.get(key, "") for key in ("id", "paper", "statement", "reproduction", "note")}
    out.update(checks=[], seeds_to_decide=None)
    scales = claim.get("measurable_at")
    if scales is not None and scale not in scales:
        why = f"measurable only at {', '.join(scales)} scale"
        if claim.get("why_not_here"):
            why += f": {claim['why_not_here']}"
        return {**out, "status": NOT_MEASURABLE, "evidence": "", "reason": why}
    if summary is None:
        return {**out, "status": NOT_RUN, "evidence": "",
                "reason": f"reproduction {claim.get('reproduction')} is not built by this configuration (its study is "
                          "not in run_studies)"}
    try:
        result = _evaluate(claim["check"], summary, missing or {}, claim.get("id", "?"))
    except GridPointAbsent as absent:
        return {**out, "status": NOT_MEASURABLE, "evidence": "", "reason": str(absent)}
    checks = evaluate_evidence(claim, files or ResultFiles({}, {}, {}))
    status, reason = result.status, result.reason
    unsettled = [c for c in checks if c["status"] == "not settled"]
    if unsettled and status in (REPRODUCED, NOT_REPRODUCED):
        # A verdict read from runs that are still moving is premature, in either direction.
        status, reason = INCONCLUSIVE, (f"would be {status} on these numbers, but the runs it reads have not settled "
                                        f"({'; '.join(c['label'] for c in unsettled)}): train longer")
    if status == NOT_REPRODUCED and not checks:
        reason = NO_EVIDENCE
    return {**out, "status": status, "evidence": result.evidence, "reason": reason,
            "seeds_to_decide": result.seeds_to_decide if status == INCONCLUSIVE else None, "checks": checks}


# --------------------------------------------------------------------------- results/claims.md


def comparison_index(reproductions: dict[str, dict], built: list[str], scale: str) -> str:
    """results/paper_vs_repro/index.md: every paper table or figure, what it reproduces, and its files at this scale."""
    lines = ["# The papers' tables and figures, and where ours are", "",
             f"Built at **{scale}** scale from the studies this run trained; the others need another scale's "
             "config (docs/scales.md).", "",
             "| Paper | Reproduces | Ours | Comparison | Study |", "|---|---|---|---|---|"]
    for name, spec in reproductions.items():
        if name in built:
            ours = f"[table](../tables/{name}.md), [figure](../figures/{name}_figure.png)"
            comparison = f"[{name}.md]({name}.md)"
        else:
            ours, comparison = "not run in this configuration", "-"
        paper, reproduces = (display.markdown_cell(spec[key]) for key in ("paper", "reproduces"))
        lines.append(f"| {paper} | {reproduces} | {ours} | {comparison} | `{spec['study']}` |")
    if not reproductions:
        lines.append("| - | no reproductions are defined in params.yaml | - | - | - |")
    return "\n".join(lines) + "\n"


def evaluate_claims(claims: list[dict], files: ResultFiles, scale: str) -> list[dict]:
    """Every claim at one scale (``evaluate_claim`` with its reproduction's table and n/a reasons)."""
    return [evaluate_claim(c, files.summaries.get(c["reproduction"]), files.missing.get(c["reproduction"], {}),
                           scale, files) for c in claims]


def claim_counts(results: list[dict], scale: str) -> dict:
    """{"all": {status: n}, "papers": {paper: {status: n}}, "scale": scale} of evaluated claims."""
    def count(rs):
        return {status: sum(r["status"] == status for r in rs) for status in STATUSES}

    ran = [r for r in results if r["status"] != NOT_RUN]
    papers = dict.fromkeys(r["paper"] for r in ran)
    return {"all": count(ran), "papers": {p: count([r for r in ran if r["paper"] == p]) for p in papers},
            "not_run": len(results) - len(ran), "scale": scale}


INTRO = ("This run is at **{scale}** scale; every status below applies to that scale only. Each verdict is decided by a "
         "95 % interval over seeds, never by a mean alone: a threshold by the {mean}, a comparison (and each step of a "
         "trend, each pair of a best-of) by the {difference}. *Reproduced*: the interval clears the claimed bound; "
         "*not reproduced*: it clears it in the other direction; *inconclusive*: it contains the bound (the page says "
         "how many seeds per row would decide it at the observed spread), or a single seed was all there was, or a "
         "declared check found the runs still moving; *not measurable here*: this scale did not produce the numbers "
         "(see the reason). A threshold also counts the seeds that meet it. The checks under a claim are computed "
         "from result files by the claims rule (params.yaml: `claims[].evidence`), as is every number on this page.")


def _check_lines(result: dict) -> list[str]:
    lines = []
    for check in result.get("checks", []):
        line = f"- **{check['label']}**: {check['status']}. {check['text']}"
        if check.get("why"):
            line += f" *Why this check:* {check['why']}"
        lines.append(line)
    return lines


def render_claims_markdown(results: list[dict], scale: str) -> str:
    """results/claims.md from evaluated claims (``evaluate_claims``); claims this configuration does not
    run are listed at the end, outside every count."""
    not_run = [r for r in results if r["status"] == NOT_RUN]
    results = [r for r in results if r["status"] != NOT_RUN]
    papers = list(dict.fromkeys(r["paper"] for r in results))
    lines = ["# The papers' claims, checked on our reproductions", "",
             INTRO.format(scale=scale, mean=intervals.INTERVAL_NAMES["mean"],
                          difference=intervals.INTERVAL_NAMES["difference"]), "",
             "| Paper | " + " | ".join(s.capitalize() for s in STATUSES) + " | Claims |",
             "|---|" + "---|" * (len(STATUSES) + 1)]
    for paper in papers:
        mine = [r for r in results if r["paper"] == paper]
        counts = [sum(r["status"] == s for r in mine) for s in STATUSES]
        lines.append(f"| {display.markdown_cell(paper)} | " + " | ".join(map(str, counts)) + f" | {len(mine)} |")
    totals = [sum(r["status"] == s for r in results) for s in STATUSES]
    lines.append("| **All** | " + " | ".join(map(str, totals)) + f" | {len(results)} |")
    for paper in papers:
        mine = [r for r in results if r["paper"] == paper]
        lines += ["", f"## {paper}", "", "| Claim | Status | Evidence | Reproduction |", "|---|---|---|---|"]
        for r in mine:
            evidence = r["evidence"]
            if r["status"] == NOT_MEASURABLE:
                evidence = f"Not measurable: {r['reason']}" + (f" ({evidence})" if evidence else "")
            elif r["reason"]:
                evidence += f". {r['status'].capitalize()}: {r['reason']}."
            if r.get("checks"):
                evidence += (" " if evidence.endswith(".") else ". ") + "Checks: see below."
            statement, evidence = display.markdown_cell(r["statement"]), display.markdown_cell(evidence)
            lines.append(f"| {statement} (`{r['id']}`) | {r['status']} | {evidence} | `{r['reproduction']}` |")
        for r in (r for r in mine if r.get("checks") or r.get("note")):
            lines += ["", f"### `{r['id']}`: {r['status']}", ""]
            if r.get("note"):
                lines += [r["note"], ""]
            lines += _check_lines(r)
    if not_run:
        lines += ["", f"## Not run in this configuration ({len(not_run)})", "",
                  "Their studies are not in this configuration's run_studies, so nothing here speaks for or against "
                  "them; the configuration that runs their study decides them (docs/scales.md).", "",
                  "| Claim | Paper | Reproduction |", "|---|---|---|"]
        lines += [f"| {display.markdown_cell(r['statement'])} (`{r['id']}`) | {display.markdown_cell(r['paper'])} | "
                  f"`{r['reproduction']}` |" for r in not_run]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the claims rule's files


def read_result_files(settings: dict, results_dir: str | Path) -> ResultFiles:
    """The built reproductions' tables and n/a reasons, and the convergence curves the claims' checks name."""
    results, built = Path(results_dir), settings["built"]
    summaries = {name: pd.read_csv(results / "tables" / f"{name}.csv") if name in built else None
                 for name in settings["reproductions"]}
    missing = {name: json.loads((results / "metrics" / f"{name}.json").read_text())["not_available"]
               if name in built else {} for name in settings["reproductions"]}
    curves = {study: pd.read_csv(results / "tables" / f"{study}_over_steps.csv")
              for study in settings.get("curves", [])}
    return ResultFiles(summaries, missing, curves)


def write_claims_pages(settings: dict, results_dir: str | Path, claims_page: str | Path, index_page: str | Path,
                       counts_file: str | Path | None = None) -> None:
    """results/claims.md, results/paper_vs_repro/index.md (each with its .html) and, with ``counts_file``,
    the verdict counts as JSON, from the reproduction tables and convergence curves already in ``results_dir``.

    ``settings``: the claims rule's slice, {claims, reproductions: {name: {paper, reproduces, study}},
    built: the names built at this scale, curves: the convergence studies built whose curves the claims'
    checks read, scale}, with ``reproductions`` in params.yaml's order.
    """
    scale = settings["scale"]
    evaluated = evaluate_claims(settings["claims"], read_result_files(settings, results_dir), scale)
    write_markdown(claims_page, render_claims_markdown(evaluated, scale))
    if counts_file:  # for the end-of-run summary
        write_json(counts_file, claim_counts(evaluated, scale))
    write_markdown(index_page, comparison_index(settings["reproductions"], settings["built"], scale))
