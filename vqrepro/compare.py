"""Paper vs. reproduction: one paper table or figure next to the numbers our runs measured.

A reproduction (``params.yaml: reproductions.<name>``) names our presets and the paper's row each one
stands for, the metrics, and optionally where its published numbers are (``paper_numbers``: a CSV
in ``vqrepro/paper_numbers``, in the units the paper printed). Its summary is one row per
(preset, axis values) with ``<metric>_mean`` / ``<metric>_std`` in our raw units and ``seeds``.

Spec keys read here::

    rows:          {preset: "paper row label"}                          # string row, needs row_column
                   {preset: {label: "shown label", paper: {csv_column: value, ...}}}  # mapping row
                   {preset: {label: "shown label", paper: null}}       # our row, not in the paper
    axes:          [codebook_size, code_dim, batch_size]  (any subset; the grid fields varying between rows)
    metrics:       [mse, usage, ...]
    paper_numbers:                                     # optional
      file:        ste_generative_reconstruction.csv   # in paper_dir
      where:       {csv_column: value}                 # filter, compared as values (see norm_value)
      row_column:  method                              # CSV column holding the string rows' labels
      axes:        {our_axis: csv_column}              # each summary row also matches on these
      aliases:     {csv_column: {printed: meant}}      # e.g. {codebook_size: {8912: 8192}}
      metrics:     {ours: [csv_column, factor]}        # paper value * factor (> 0) = our raw units

Values are matched after :func:`norm_value`: ``"0"``, ``0`` and ``0.0`` are equal; other text compares as
stripped strings. The CSVs are read as text with no NA guessing, so a cell reading ``None`` (the
"no collapse prevention" method of the STE paper's Table 1) is a label and an empty cell is "not reported".
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import display

PAPER_NUMBERS_KEYS = ("file", "where", "row_column", "axes", "aliases", "metrics")
NOT_REPORTED = "—"


# --------------------------------------------------------------------------- values


def norm_value(value) -> str:
    """A value as a comparable string: numbers by value (``"1"``, ``1``, ``1.0`` -> ``"1"``), text stripped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return repr(number)


def _float(text) -> float:
    """A CSV cell as a number; empty (not reported) or unreadable -> NaN."""
    try:
        return float(str(text).strip())
    except ValueError:
        return math.nan


def _decimals(text: str) -> int:
    text = str(text).strip()
    return len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else 0


# --------------------------------------------------------------------------- the CSV


def _key(name: str, key: str) -> str:
    return f"reproductions.{name}.paper_numbers.{key}"


def read_paper_csv(path: Path) -> pd.DataFrame:
    """The CSV as text: no NA guessing (``None`` stays a label), empty cells are ``""``."""
    return pd.read_csv(path, dtype=str, keep_default_na=False).astype(object)


def _aliases(pn: dict) -> dict[str, dict[str, str]]:
    """CSV column -> {printed: meant}, both normalised. An alias keyed by our axis name means its CSV column."""
    axes = pn.get("axes") or {}
    return {axes.get(col, col): {norm_value(k): norm_value(v) for k, v in (fixes or {}).items()}
            for col, fixes in (pn.get("aliases") or {}).items()}


def _normalised(table: pd.DataFrame, pn: dict) -> pd.DataFrame:
    """Every cell normalised, aliases applied: what criteria are matched against."""
    aliases = _aliases(pn)
    out = table.map(norm_value)
    for col, fixes in aliases.items():
        if col in out:
            out[col] = out[col].map(lambda v, f=fixes: f.get(v, v))
    return out


def _row_criteria(preset: str, row, pn: dict) -> dict | None:
    """CSV column -> value that the paper row of one of our presets has; None: not in the paper."""
    if isinstance(row, str):
        return {pn["row_column"]: row}
    paper = row.get("paper")
    return None if paper is None else dict(paper)


def _label(preset: str, row) -> str:
    if isinstance(row, str):
        return row
    return str(row.get("label", preset))


def _matches(norm: pd.DataFrame, criteria: dict) -> pd.Series:
    mask = pd.Series(True, index=norm.index)
    for col, value in criteria.items():
        mask &= norm[col] == norm_value(value)
    return mask


def _describe(criteria: dict) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in criteria.items()) + "}"


def _rows_text(table: pd.DataFrame, index) -> str:
    return "; ".join(f"CSV line {i + 2}: " + ", ".join(f"{c}={table.at[i, c]}" for c in table.columns)
                     for i in index)


def check_paper_numbers(name: str, spec: dict, paper_dir: Path) -> None:
    """Validate ``reproductions.<name>.paper_numbers`` against its CSV; ValueError naming the key at fault."""
    pn = spec.get("paper_numbers")
    if pn is None:
        return
    if not isinstance(pn, dict):
        raise ValueError(  # noqa: TRY004 -- config errors are ValueError throughout (the config check's contract)
            f"reproductions.{name}.paper_numbers: expected a mapping with keys {list(PAPER_NUMBERS_KEYS)}")
    unknown = sorted(set(pn) - set(PAPER_NUMBERS_KEYS))
    if unknown:
        raise ValueError(f"{_key(name, unknown[0])}: unknown key; the keys are {list(PAPER_NUMBERS_KEYS)}")
    if not pn.get("file"):
        raise ValueError(f"{_key(name, 'file')}: missing; name the CSV (in {paper_dir}) holding the paper's numbers")
    path = Path(paper_dir) / pn["file"]
    if not path.is_file():
        present = sorted(p.name for p in Path(paper_dir).glob("*.csv")) if Path(paper_dir).is_dir() else []
        raise ValueError(f"{_key(name, 'file')}: {pn['file']!r} not found: looked for {path}; "
                         f"CSVs there: {present or 'none (is the directory right?)'}")
    table = read_paper_csv(path)
    columns = list(table.columns)

    def need_column(key: str, col) -> None:
        if col not in columns:
            raise ValueError(f"{_key(name, key)}: {col!r} is not a column of {pn['file']}; its columns are {columns}")

    for key in ("where", "axes", "aliases", "metrics"):
        if pn.get(key) is not None and not isinstance(pn[key], dict):
            raise ValueError(f"{_key(name, key)}: expected a mapping, got {pn[key]!r}")
    where = pn.get("where") or {}
    for col in where:
        need_column(f"where.{col}", col)
    axes = pn.get("axes") or {}
    our_axes = list(spec.get("axes") or [])
    for axis, col in axes.items():
        if axis not in our_axes:
            raise ValueError(f"{_key(name, f'axes.{axis}')}: {axis!r} is not in reproductions.{name}.axes {our_axes}; "
                             "map only the axes that vary between this reproduction's rows")
        need_column(f"axes.{axis}", col)
    for col, fixes in (pn.get("aliases") or {}).items():
        need_column(f"aliases.{col}", axes.get(col, col))
        if not isinstance(fixes, dict):
            raise ValueError(  # noqa: TRY004 -- a config error, as above
                f"{_key(name, f'aliases.{col}')}: expected a mapping {{printed value: meant value}}")
    metrics = pn.get("metrics")
    if not metrics:
        raise ValueError(f"{_key(name, 'metrics')}: missing; map our metrics to [CSV column, factor]")
    ours = list(spec.get("metrics") or [])
    for metric, entry in metrics.items():
        key = f"metrics.{metric}"
        if metric not in ours:
            raise ValueError(f"{_key(name, key)}: {metric!r} is not in reproductions.{name}.metrics {ours}; "
                             "add it there or drop it here")
        if not (isinstance(entry, list | tuple) and len(entry) == 2):
            raise ValueError(f"{_key(name, key)}: expected [CSV column, factor], got {entry!r}")
        need_column(key, entry[0])
        factor = entry[1]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not (0 < factor < math.inf):
            raise ValueError(f"{_key(name, key)}: the factor must be a positive number "
                             f"(paper value * factor = our raw units, e.g. 0.01 for a percentage), got {factor!r}")
    rows = spec.get("rows") or {}
    if any(isinstance(r, str) for r in rows.values()):
        if not pn.get("row_column"):
            raise ValueError(f"{_key(name, 'row_column')}: missing; reproductions.{name}.rows has string rows, "
                             "so name the CSV column holding those labels")
        need_column("row_column", pn["row_column"])

    norm = _normalised(table, pn)
    base = _matches(norm, where)
    if not base.any():
        raise ValueError(f"{_key(name, 'where')}: {_describe(where)} matches no row of {pn['file']}")
    _check_fraction_units(name, pn, table[base])
    axis_cols = list(axes.values())
    for preset, row in rows.items():
        if not isinstance(row, str | dict):
            raise ValueError(f"reproductions.{name}.rows.{preset}: expected a paper row label or "  # noqa: TRY004
                             f"{{label: ..., paper: {{csv_column: value}}}}, got {row!r}")
        criteria = _row_criteria(preset, row, pn)
        if criteria is None:
            continue
        if not isinstance(criteria, dict):
            raise ValueError(  # noqa: TRY004 -- a config error, as above
                f"reproductions.{name}.rows.{preset}.paper: expected {{csv_column: value}}")
        for col in criteria:
            need_column(f"rows.{preset}.paper.{col}" if isinstance(row, dict) else "row_column", col)
        hits = norm.index[base & _matches(norm, criteria)]
        if len(hits) == 0:
            raise ValueError(f"{_key(name, 'file')}: the paper row of reproductions.{name}.rows.{preset}, "
                             f"{_describe(criteria)} (with where {_describe(where)}), is not in {pn['file']}")
        ambiguous = norm.loc[hits, axis_cols].duplicated().any() if axis_cols else len(hits) > 1
        if ambiguous:
            raise ValueError(f"{_key(name, 'axes' if axis_cols else 'where')}: the paper row of reproductions."
                             f"{name}.rows.{preset}, {_describe(criteria)}, matches several rows of {pn['file']} "
                             f"that {'paper_numbers.axes' if axis_cols else 'nothing'} tells apart: "
                             f"{_rows_text(table, hits)}; narrow it with where or axes")


def _check_fraction_units(name: str, pn: dict, rows: pd.DataFrame) -> None:
    """A fraction metric's paper values, converted, must lie in [0, 1]: a percentage column mapped
    with factor 1.0 would otherwise compare 98.4 with our 0.984."""
    for metric, (column, factor) in pn["metrics"].items():
        if metric not in display.FRACTION_METRICS:
            continue
        values = [v for v in (_float(cell) * factor for cell in rows[column]) if not math.isnan(v)]
        if values and not all(0 <= v <= 1 for v in values):
            worst = max(values, key=lambda v: abs(v - 0.5))
            raise ValueError(f"{_key(name, f'metrics.{metric}')}: {column!r} times the factor {factor:g} reaches "
                             f"{worst:g}, but {metric} is a fraction (0 to 1) in our units; a column in percent "
                             "needs the factor 0.01")


# --------------------------------------------------------------------------- the table


def _ordered(summary: pd.DataFrame, spec: dict) -> pd.DataFrame:
    order = {preset: i for i, preset in enumerate(spec.get("rows") or {})}
    axes = [a for a in spec.get("axes") or [] if a in summary]
    out = summary.reset_index(drop=True).copy()
    out["_order"] = [order.get(q, len(order)) for q in out.get("quantizer", pd.Series([""] * len(out)))]
    out["_pos"] = range(len(out))
    return out.sort_values(["_order", *axes, "_pos"], kind="stable").reset_index(drop=True)


def _seeds(row: pd.Series, metrics: list[str]) -> int:
    if "seeds" in row and not pd.isna(row["seeds"]):
        return int(row["seeds"])
    return int(any(not pd.isna(row.get(f"{m}_mean", math.nan)) for m in metrics))


def _fmt(value: float, decimals: int, signed: bool = False) -> str:
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        return f"{0:.{decimals}f}"
    return ("+" + text) if signed and value > 0 else text


def _ours(row: pd.Series, metric: str, scale: float, decimals: int) -> tuple[str, float]:
    """Our cell (mean ± std after * scale) and the mean (NaN if none)."""
    mean = float(row.get(f"{metric}_mean", math.nan))
    std = float(row.get(f"{metric}_std", math.nan))
    if math.isnan(mean):
        return "n/a", math.nan
    text = _fmt(mean * scale, decimals)
    if not math.isnan(std):
        text += f" ± {_fmt(std * scale, decimals)}"
    return text, mean * scale


def paper_vs_repro(name: str, spec: dict, summary: pd.DataFrame, paper_dir: Path, scale: str, setting: str,
                   missing: dict[str, str]) -> str:
    """Markdown: the paper's numbers, ours in the paper's units, and the signed difference (ours - paper)."""
    check_paper_numbers(name, spec, paper_dir)
    pn = spec.get("paper_numbers")
    metrics = list(spec.get("metrics") or [])
    rows = spec.get("rows") or {}
    axes = [a for a in spec.get("axes") or []]
    title = f"{spec.get('paper', name)}: {spec.get('reproduces', name)}"
    setting = setting.strip().rstrip(".")
    lines = [f"# {display.markdown_cell(title)}", ""]

    table = norm = None
    base = None
    if pn is not None:
        table = read_paper_csv(Path(paper_dir) / pn["file"])
        norm = _normalised(table, pn)
        where = pn.get("where") or {}
        base = _matches(norm, where)
        shown = ", ".join(f"{k} = {v}" for k, v in where.items()) or "the whole table"
        source = [f"`{pn['file']}`"]
        for col in ("table", "figure"):
            if col in table:
                source += [str(v) for v in dict.fromkeys(table.loc[base, col]) if v]
        lines.append(f"Ours: measured at {scale} scale ({setting}). Paper: {shown} ({', '.join(source)}). "
                     "Mini-scale numbers are not expected to equal the paper's; the difference column shows "
                     "the gap rather than hiding it.")
    else:
        lines.append(f"Ours: measured at {scale} scale ({setting}). The paper reports no numbers for this table "
                     "in vqrepro/paper_numbers, so only ours are listed.")
    lines.append("")

    paper_metrics = (pn or {}).get("metrics") or {}
    decimals: dict[str, int] = {}
    for metric in metrics:
        if metric in paper_metrics:
            col = paper_metrics[metric][0]
            printed = [v for v in table.loc[base, col] if str(v).strip()]
            decimals[metric] = max((_decimals(v) for v in printed), default=2)
        else:
            decimals[metric] = display.metric(metric).decimals

    header = ["Row"] + [display.AXES[a].comparison for a in axes] + ["Seeds"]
    for metric in metrics:
        if metric in paper_metrics:
            col, factor = paper_metrics[metric]
            header += [f"{metric} [{col}]: Paper", f"{metric}: Ours", f"{metric}: Difference"]
        else:
            header += [f"{display.metric(metric).title}: Ours" + ("" if pn is None else " (not in the paper's table)")]
    lines += ["| " + " | ".join(display.markdown_cell(h) for h in header) + " |", "|" + "---|" * len(header)]

    na_metrics: list[str] = []
    for _, row in _ordered(summary, spec).iterrows():
        preset = row.get("quantizer")
        spec_row = rows.get(preset, str(row.get("row", preset)))
        label = _label(preset, spec_row) if preset in rows else str(row.get("row", preset))
        seeds = _seeds(row, metrics)
        cells = [display.markdown_cell(v) for v in [label, *(norm_value(row.get(a)) for a in axes)]] + [str(seeds)]

        paper_row = None
        if pn is not None:
            criteria = _row_criteria(preset, spec_row, pn) if (preset in rows or pn.get("row_column")) else None
            if criteria is not None:
                criteria = {**criteria, **{col: row[a] for a, col in (pn.get("axes") or {}).items() if a in row}}
                hits = norm.index[base & _matches(norm, criteria)]
                if len(hits) > 1:
                    raise ValueError(f"reproductions.{name}: our row {label!r} ({_describe(criteria)}) matches "
                                     f"several rows of {pn['file']}: {_rows_text(table, hits)}; "
                                     "narrow paper_numbers.where or paper_numbers.axes")
                paper_row = hits[0] if len(hits) == 1 else None

        for metric in metrics:
            if metric in paper_metrics:
                col, factor = paper_metrics[metric]
                d = decimals[metric]
                printed = "" if paper_row is None else str(table.at[paper_row, col]).strip()
                paper_value = _float(printed) if printed else math.nan
                paper_cell = printed if printed and not math.isnan(paper_value) else NOT_REPORTED
                scale_ = 1.0 / factor
            else:
                d = decimals[metric]
                paper_value, paper_cell, scale_ = math.nan, None, display.metric(metric).scale
            if seeds == 0:
                ours_cell, ours_value = "failed", math.nan
            else:
                ours_cell, ours_value = _ours(row, metric, scale_, d)
                if ours_cell == "n/a":
                    if metric not in na_metrics:
                        na_metrics.append(metric)
                    ours_cell = f"n/a [{metric}]"
            if paper_cell is None:
                cells.append(ours_cell)
                continue
            diff = NOT_REPORTED if math.isnan(paper_value) or math.isnan(ours_value) \
                else _fmt(ours_value - paper_value, d, signed=True)
            cells += [paper_cell, ours_cell, diff]
        lines.append("| " + " | ".join(cells) + " |")

    lines.append("")
    notes = [("Ours: mean ± sample standard deviation over the seeds that finished (no ± with one seed); "
              "failed: no seed finished.")]
    if pn is not None:
        units = ", ".join(f"{m} as `{c}` (ours / {f:g})" for m, (c, f) in sorted(paper_metrics.items()) if m in metrics)
        notes.append(f"Paper, Ours and Difference (ours - paper) are in the paper's printed units: {units}; "
                     f"{NOT_REPORTED} in Paper: the paper does not report it; {NOT_REPORTED} in Difference: "
                     "one side is missing.")
        aliases = pn.get("aliases") or {}
        if aliases:
            fixes = "; ".join(f"{col} {k} read as {v}" for col, f in aliases.items() for k, v in f.items())
            notes.append(f"Read from the CSV with these fixes of the paper's misprints: {fixes}.")
    if any(m not in paper_metrics for m in metrics):
        notes.append("Metrics with no paper column are shown in our own tables' units (MSE x 1e3, usage and "
                     "accuracy in %).")
    for metric in na_metrics:
        notes.append(f"n/a [{metric}]: {missing.get(metric, 'not computable for this row (no reason recorded)')}.")
    lines += notes
    return "\n".join(lines) + "\n"
