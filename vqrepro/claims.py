"""The papers' findings as checkable statements on our reproduction tables (``params.yaml: claims``).

A claim::

    - id: cvq_full_usage                      # unique
      paper: CVQ-VAE                          # the section of results/claims.md it is listed in
      statement: "CVQ-VAE uses nearly all of a 1024-code codebook where VQ-VAE uses under half"
      reproduction: cvq_fig1_usage            # a key of params.yaml: reproductions
      measurable_at: [paper]                  # optional: the scales it can be checked at (default: every scale)
      why_not_here: "ImageNet-1K is not bundled"   # required with measurable_at: shown at the other scales
      diagnosis: {mini: "..."}                # optional, per scale: what was checked before calling a miss a miss
      check: <condition>

A claim not reproduced at a scale is printed with its ``diagnosis`` for that scale: the evidence
(a convergence study, a sensitivity run over steps, initialisation, learning rate or seeds) that
the miss is not an artefact of our implementation or schedule. Without one the page says so.

Conditions (values and margins in our raw units: usage and accuracy are fractions, MSE is plain MSE):

- threshold  ``{row: SEL, metric: m, at_least|at_most|above|below: v}`` (exactly one of the four ops)
- comparison ``{metric: m, higher: [SEL_A, SEL_B], margin: 0}``: mean(A) > mean(B) + margin;
  ``lower``: mean(A) < mean(B) - margin. The evidence also says whether the gap exceeds the two
  standard deviations added together; the status uses the means only, seeds-level noise is reported not judged.
- trend      ``{row: SEL, metric: m, along: axis, trend: increasing|decreasing}``: the rows matching SEL
  (all rows if ``row`` is left out), sorted by the axis (one of the reproduction's ``axes``); the means must be
  strictly monotone (each step strictly up, or strictly down). Needs two or more axis values.
- best       ``{best: {metric: m, row: SEL, among: SEL|null, lowest: true}}`` (or ``highest: true``): the row's
  mean is strictly lower (higher) than every other row matching ``among`` (null: every row).
- ``{all: [cond, ...]}`` / ``{any: [cond, ...]}``, nestable.

A selector SEL maps summary columns (``row``, ``quantizer``, ``codebook_size``, ``code_dim``, ``batch_size``) to
values, e.g. ``{quantizer: cvq}`` or ``{row: VQVAE, codebook_size: 64}``; for threshold, comparison and best it
must match exactly one summary row (ValueError naming the claim and the selector otherwise).

Statuses: "reproduced", "not reproduced", "not measurable here" (a metric is n/a or its runs failed, the
reproduction was not built at this scale, or the scale is not in ``measurable_at``). ``all`` is not reproduced as
soon as one part is not reproduced, reproduced when every part is; ``any`` the other way round; otherwise not
measurable.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import display
from .compare import norm_value
from .io import write_json
from .pages import write_markdown

STATUSES = ("reproduced", "not reproduced", "not measurable here")
CLAIM_KEYS = ("id", "paper", "statement", "reproduction", "check", "measurable_at", "why_not_here", "diagnosis")
NO_DIAGNOSIS = "none recorded: this miss has not been checked against faults of ours (schedule, initialisation, seeds)"
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


def _check_selector(where: str, sel, spec: dict, *, optional: bool = False) -> None:
    if sel is None and optional:
        return
    if not isinstance(sel, dict) or not sel:
        raise ValueError(f"{where}: expected a selector, a mapping of summary columns {list(SELECTOR_COLUMNS)} "
                         f"to values such as {{quantizer: vq}}, got {sel!r}")
    for col, value in sel.items():
        if col not in SELECTOR_COLUMNS:
            raise ValueError(f"{where}.{col}: not a summary column; select on {list(SELECTOR_COLUMNS)}")
        if col == "quantizer" and spec.get("rows") and value not in spec["rows"]:
            raise ValueError(f"{where}.quantizer: {value!r} is not one of the reproduction's rows "
                             f"{list(spec['rows'])}; use one of those presets")


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


def _check_condition(where: str, cond, spec: dict, repro: str) -> None:
    if not isinstance(cond, dict) or not cond:
        raise ValueError(f"{where}: expected a condition (a mapping), got {cond!r}")
    for group in ("all", "any"):
        if group in cond:
            _check_keys(where, cond, {group}, f"'{group}'")
            parts = cond[group]
            if not isinstance(parts, list) or not parts:
                raise ValueError(f"{where}.{group}: expected a non-empty list of conditions")
            for i, part in enumerate(parts):
                _check_condition(f"{where}.{group}[{i}]", part, spec, repro)
            return
    if "best" in cond:
        _check_keys(where, cond, {"best"}, "'best'")
        inner, where = cond["best"], f"{where}.best"
        if not isinstance(inner, dict):
            raise ValueError(f"{where}: expected {{metric, row, among, lowest|highest: true}}")
        _check_keys(where, inner, {"metric", "row", "among", "lowest", "highest"}, "'best'")
        _check_metric(where, inner, spec, repro)
        _check_selector(f"{where}.row", inner.get("row"), spec)
        _check_selector(f"{where}.among", inner.get("among"), spec, optional=True)
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
            _check_selector(f"{where}.{op}[{i}]", sel, spec)
        if "margin" in cond and not (_is_number(cond["margin"]) and cond["margin"] >= 0):
            raise ValueError(f"{where}.margin: expected a number >= 0 in the metric's raw units")
        if cond["metric"] in display.FRACTION_METRICS and cond.get("margin", 0) >= 1:
            raise ValueError(f"{where}.margin: {cond['margin']} can never separate two values of {cond['metric']}, "
                             "a fraction (0 to 1); give the gap as a fraction too (5 points is 0.05)")
        return
    if "trend" in cond or "along" in cond:
        _check_keys(where, cond, {"row", "metric", "along", "trend"}, "trend")
        _check_metric(where, cond, spec, repro)
        _check_selector(f"{where}.row", cond.get("row"), spec, optional=True)
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
        _check_selector(f"{where}.row", cond.get("row"), spec)
        if not _is_number(cond[ops[0]]):
            raise ValueError(f"{where}.{ops[0]}: expected a number in the metric's raw units")
        _check_threshold_range(f"{where}.{ops[0]}", cond["metric"], cond[ops[0]])
        return
    raise ValueError(f"{where}: unknown condition {sorted(cond)}; the kinds are all, any, best, a threshold "
                     f"({', '.join(THRESHOLD_OPS)}), a comparison (higher, lower) and a trend (along + trend)")


def check_claims(claims: list[dict], reproductions: dict[str, dict]) -> None:
    """Validate ``params.yaml: claims`` against the reproductions; ValueError naming ``claims[i] (id).key``."""
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
        _check_condition(f"{at}.check", claim["check"], reproductions[repro], repro)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Result:
    ok: bool | None  # None: not measurable
    evidence: str
    reason: str = ""


def _show(metric: str, value: float) -> str:
    shown = display.metric(metric)
    if math.isnan(value):
        return "n/a"
    return f"{value * shown.scale:.{shown.decimals}f}{shown.suffix}"


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


def _stats(row: pd.Series, metric: str, missing: dict[str, str]) -> tuple[float, float, int, str]:
    """(mean, std, seeds, reason it is not measurable or '')."""
    seeds = int(row["seeds"]) if "seeds" in row and not pd.isna(row["seeds"]) else 1
    mean = float(row.get(f"{metric}_mean", math.nan))
    std = float(row.get(f"{metric}_std", math.nan))
    if seeds == 0:
        return math.nan, math.nan, 0, f"{_name(row, None)}: every seed failed"
    if math.isnan(mean):
        return mean, std, seeds, f"{metric} n/a: {missing.get(metric, 'not computable (no reason recorded)')}"
    return mean, std, seeds, ""


def _cell(row: pd.Series, metric: str, missing: dict[str, str], sel: dict | None) -> tuple[float, float, str, str]:
    mean, std, seeds, reason = _stats(row, metric, missing)
    if seeds == 0:
        text = f"{_name(row, sel)} failed"
    elif math.isnan(mean):
        text = f"{_name(row, sel)} n/a"
    else:
        text = f"{_name(row, sel)} {_show(metric, mean)}"
        if not math.isnan(std):
            text += f" ± {_show(metric, std)}"
        text += f" ({seeds} seed{'s' if seeds != 1 else ''})"
    return mean, std, text, reason


def _threshold(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    metric = cond["metric"]
    op = next((o for o in THRESHOLD_OPS if o in cond), None)
    if op is None or "row" not in cond or "metric" not in cond:
        raise ValueError(f"claim {cid}: unknown condition {sorted(cond)}; run check_claims on the claims first")
    limit = float(cond[op])
    mean, _, text, reason = _cell(_one(summary, cond["row"], cid), metric, missing, cond["row"])
    evidence = f"{metric}: {text}; required {THRESHOLD_OPS[op]} {_show(metric, limit)}"
    if reason:
        return _Result(None, evidence, reason)
    ok = {"at_least": mean >= limit, "at_most": mean <= limit, "above": mean > limit, "below": mean < limit}[op]
    return _Result(ok, f"{evidence}: {'met' if ok else 'not met'}")


def _comparison(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    metric = cond["metric"]
    op = "higher" if "higher" in cond else "lower"
    margin = float(cond.get("margin", 0.0))
    sel_a, sel_b = cond[op]
    mean_a, std_a, text_a, reason_a = _cell(_one(summary, sel_a, cid), metric, missing, sel_a)
    mean_b, std_b, text_b, reason_b = _cell(_one(summary, sel_b, cid), metric, missing, sel_b)
    evidence = f"{metric}: {text_a} vs {text_b}; claimed the first {op}"
    if margin:
        evidence += f" by more than {_show(metric, margin)}"
    reason = "; ".join(dict.fromkeys(r for r in (reason_a, reason_b) if r))
    if reason:
        return _Result(None, evidence, reason)
    ok = mean_a > mean_b + margin if op == "higher" else mean_a < mean_b - margin
    gap = abs(mean_a - mean_b)
    if math.isnan(std_a) or math.isnan(std_b):
        noise = "seed spread unknown (one seed)"
    else:
        spread = std_a + std_b
        noise = (f"{'larger than' if gap > spread else 'within'} the seed spread "
                 f"(the two standard deviations added: {_show(metric, spread)})")
    return _Result(ok, f"{evidence}: {'holds' if ok else 'does not hold'}; the means differ by "
                       f"{_show(metric, gap)}, {noise}")


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
    points, reasons, means = [], [], []
    for _, row in rows.iterrows():
        mean, std, seeds, reason = _stats(row, metric, missing)
        value = "failed" if seeds == 0 else _show(metric, mean)
        if not math.isnan(std) and seeds:
            value += f" ± {_show(metric, std)}"
        points.append(f"{norm_value(row[axis])}: {value}")
        means.append(mean)
        if reason:
            reasons.append(reason)
    if not sel:
        who = "all rows"
    elif len(rows) and rows.get("row", rows.get("quantizer")).nunique() == 1:
        who = _name(rows.iloc[0], {})
    else:
        who = f"the rows matching {sel}"
    evidence = f"{metric} of {who} along {axis}: " + ", ".join(points) + f"; claimed strictly {direction}"
    if len(rows) < 2:
        return _Result(None, evidence, f"needs two or more {axis} values, the summary has {len(rows)}")
    if reasons:
        return _Result(None, evidence, "; ".join(dict.fromkeys(reasons)))
    steps = [b - a for a, b in itertools.pairwise(means)]
    ok = all(s > 0 for s in steps) if direction == "increasing" else all(s < 0 for s in steps)
    return _Result(ok, f"{evidence}: {'holds' if ok else 'does not hold'}")


def _best(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    spec = cond["best"]
    metric, lowest = spec["metric"], bool(spec.get("lowest"))
    target = _one(summary, spec["row"], cid)
    pool = _select(summary, spec.get("among"), cid)
    if target.name not in pool.index:
        raise ValueError(f"claim {cid}: best.row {spec['row']} is not among best.among {spec.get('among')}")
    mean, _, text, reason = _cell(target, metric, missing, spec["row"])
    others, reasons = [], [reason] if reason else []
    for idx, row in pool.iterrows():
        if idx == target.name:
            continue
        m, _, t, r = _cell(row, metric, missing, None)
        others.append((m, t))
        if r:
            reasons.append(r)
    which = "lowest" if lowest else "highest"
    evidence = f"{metric}: {text}, claimed {which} of {len(pool)} rows; others: " + \
        (", ".join(t for _, t in others) or "none")
    if reasons:
        return _Result(None, evidence, "; ".join(dict.fromkeys(reasons)))
    ok = all(mean < m for m, _ in others) if lowest else all(mean > m for m, _ in others)
    return _Result(ok, f"{evidence}: {'holds' if ok else 'does not hold'}")


def _evaluate(cond: dict, summary: pd.DataFrame, missing: dict, cid: str) -> _Result:
    for group in ("all", "any"):
        if group in cond:
            parts = [_evaluate(c, summary, missing, cid) for c in cond[group]]
            oks = [p.ok for p in parts]
            if group == "all":
                ok = False if False in oks else (True if all(o is True for o in oks) else None)
            else:
                ok = True if True in oks else (False if all(o is False for o in oks) else None)
            # each part already ends in whether it held; an unmeasurable one says so
            evidence = f"; {'and' if group == 'all' else 'or'} ".join(
                p.evidence + (" (not measurable)" if p.ok is None else "") for p in parts)
            reason = "" if ok is not None else "; ".join(dict.fromkeys(p.reason for p in parts if p.reason))
            return _Result(ok, evidence, reason)
    if "best" in cond:
        return _best(cond, summary, missing, cid)
    if "higher" in cond or "lower" in cond:
        return _comparison(cond, summary, missing, cid)
    if "trend" in cond:
        return _trend(cond, summary, missing, cid)
    return _threshold(cond, summary, missing, cid)


def evaluate_claim(claim: dict, summary: pd.DataFrame | None, missing: dict[str, str], scale: str) -> dict:
    """One claim at one scale: ``{id, paper, statement, reproduction, status, evidence, reason}``."""
    out = {key: claim.get(key, "") for key in ("id", "paper", "statement", "reproduction")}
    scales = claim.get("measurable_at")
    if scales is not None and scale not in scales:
        why = f"measurable only at {', '.join(scales)} scale"
        if claim.get("why_not_here"):
            why += f": {claim['why_not_here']}"
        return {**out, "status": "not measurable here", "evidence": "", "reason": why}
    if summary is None:
        return {**out, "status": "not measurable here", "evidence": "",
                "reason": f"reproduction {claim.get('reproduction')} was not built at {scale} scale"}
    try:
        result = _evaluate(claim["check"], summary, missing or {}, claim.get("id", "?"))
    except GridPointAbsent as absent:
        return {**out, "status": "not measurable here", "evidence": "", "reason": str(absent)}
    status = {True: "reproduced", False: "not reproduced", None: "not measurable here"}[result.ok]
    diagnosis = (claim.get("diagnosis") or {}).get(scale, NO_DIAGNOSIS) if status == "not reproduced" else ""
    return {**out, "status": status, "evidence": result.evidence, "reason": result.reason, "diagnosis": diagnosis}


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
            ours, comparison = f"not built at {scale} scale", "-"
        paper, reproduces = (display.markdown_cell(spec[key]) for key in ("paper", "reproduces"))
        lines.append(f"| {paper} | {reproduces} | {ours} | {comparison} | `{spec['study']}` |")
    if not reproductions:
        lines.append("| - | no reproductions are defined in params.yaml | - | - | - |")
    return "\n".join(lines) + "\n"


def evaluate_claims(claims: list[dict], summaries: dict[str, pd.DataFrame | None],
                    missing: dict[str, dict[str, str]], scale: str) -> list[dict]:
    """Every claim at one scale (``evaluate_claim`` with its reproduction's table and n/a reasons)."""
    return [evaluate_claim(c, summaries.get(c["reproduction"]), (missing or {}).get(c["reproduction"], {}), scale)
            for c in claims]


def claim_counts(results: list[dict], scale: str) -> dict:
    """{"all": {status: n}, "papers": {paper: {status: n}}, "scale": scale} of evaluated claims."""
    def count(rs):
        return {status: sum(r["status"] == status for r in rs) for status in STATUSES}

    papers = dict.fromkeys(r["paper"] for r in results)
    return {"all": count(results), "papers": {p: count([r for r in results if r["paper"] == p]) for p in papers},
            "scale": scale}


def build_claims_markdown(claims: list[dict], summaries: dict[str, pd.DataFrame | None],
                          missing: dict[str, dict[str, str]], scale: str) -> str:
    """results/claims.md: counts per paper and status, then one table per paper (papers in the claims' order)."""
    return render_claims_markdown(evaluate_claims(claims, summaries, missing, scale), scale)


def render_claims_markdown(results: list[dict], scale: str) -> str:
    """results/claims.md from evaluated claims (``evaluate_claims``)."""
    papers = list(dict.fromkeys(r["paper"] for r in results))
    lines = ["# The papers' claims, checked on our reproductions", "",
             (f"This run is at **{scale}** scale; every status below applies to that scale only. A claim reproduced "
             "here holds on our smaller setting, one not reproduced does not, and one not measurable here needs "
             "numbers this scale did not produce (see the reason). Comparisons use the means over seeds; whether a "
             "gap exceeds the two standard deviations added together is reported, not judged."), "",
             "| Paper | " + " | ".join(s.capitalize() for s in STATUSES) + " | Claims |",
             "|---|" + "---|" * (len(STATUSES) + 1)]
    for paper in papers:
        mine = [r for r in results if r["paper"] == paper]
        counts = [sum(r["status"] == s for r in mine) for s in STATUSES]
        lines.append(f"| {display.markdown_cell(paper)} | " + " | ".join(map(str, counts)) + f" | {len(mine)} |")
    totals = [sum(r["status"] == s for r in results) for s in STATUSES]
    lines.append("| **All** | " + " | ".join(map(str, totals)) + f" | {len(results)} |")
    for paper in papers:
        lines += ["", f"## {paper}", "", "| Claim | Status | Evidence | Reproduction |", "|---|---|---|---|"]
        for r in (r for r in results if r["paper"] == paper):
            evidence = r["evidence"]
            if r["status"] == "not measurable here":
                evidence = f"Not measurable: {r['reason']}" + (f" ({evidence})" if evidence else "")
            if r.get("diagnosis"):
                evidence += f" Diagnosis: {r['diagnosis']}"
            statement, evidence = display.markdown_cell(r["statement"]), display.markdown_cell(evidence)
            lines.append(f"| {statement} (`{r['id']}`) | {r['status']} | {evidence} | `{r['reproduction']}` |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the claims rule's files


def write_claims_pages(settings: dict, results_dir: str | Path, claims_page: str | Path, index_page: str | Path,
                       counts_file: str | Path | None = None) -> None:
    """results/claims.md, results/paper_vs_repro/index.md (each with its .html) and, with ``counts_file``,
    the verdict counts as JSON, from the reproduction tables already in ``results_dir``.

    ``settings``: the claims rule's slice, {claims, reproductions: {name: {paper, reproduces, study}},
    built: the names built at this scale, scale}, with ``reproductions`` in params.yaml's order.
    """
    results, scale, built = Path(results_dir), settings["scale"], settings["built"]
    reproductions = settings["reproductions"]
    summaries = {name: pd.read_csv(results / "tables" / f"{name}.csv") if name in built else None
                 for name in reproductions}
    missing = {name: json.loads((results / "metrics" / f"{name}.json").read_text())["not_available"]
               if name in built else {} for name in reproductions}
    evaluated = evaluate_claims(settings["claims"], summaries, missing, scale)
    write_markdown(claims_page, render_claims_markdown(evaluated, scale))
    if counts_file:  # for the end-of-run summary
        write_json(counts_file, claim_counts(evaluated, scale))
    write_markdown(index_page, comparison_index(reproductions, built, scale))
