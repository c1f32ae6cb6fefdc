"""Results -> paper-style tables and figures, one study at a time.

Stage-1 study (every ``metrics.json`` of its grid):
- results/tables/<study>.{md,tex}: mean +- std over seeds, n/a with the reason as a footnote
- results/tables/<study>.csv: the same numbers, one column per statistic (machine-readable)
- results/figures/<study>_usage_vs_codebook_size.{png,pdf}
- results/metrics/<study>.json: the per-configuration means, registered as DVC metrics
Generation study (every ``generation_<classifier>.json`` and ``samples.pt``): the same
table files, plus ``<study>_samples`` and ``<study>_quality_over_training`` figures.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import display, runs
from .config import row_label
from .io import load_tensors, write_json, write_text
from .pages import write_markdown
from .plotting import legend_outside, pyplot, save_figure, series_style, wrapped
from .runs import FAILURE_RECORD, TRAIN_LOG, failure_reason

Metric = tuple[str, str, float, int]  # (key, column title, display scale, decimals)


def _metric(name: str) -> Metric:
    """One metric's column in a table, as vqrepro.display shows it."""
    shown = display.metric(name)
    return (name, shown.title, shown.scale, shown.decimals)


def _axis_key(axis: str) -> tuple[str, str, str]:
    """One grid axis as a grouping column of a table, titled as vqrepro.display says."""
    return (axis, display.AXES[axis].column, display.AXES[axis].latex)


@dataclass(frozen=True)
class TableSpec:
    keys: list[tuple[str, str, str]]  # (field, Markdown title, LaTeX title): the grouping columns
    metrics: list[Metric]


TOKENIZER_TABLE = TableSpec(
    keys=[("quantizer", "Quantizer", "Quantizer"), _axis_key("codebook_size"), _axis_key("code_dim")],
    metrics=[_metric(m) for m in ("mse", "psnr", "ssim", "lpips", "rfid", "usage", "usage_train", "perplexity")],
)
GENERATION_TABLE = TableSpec(
    keys=TOKENIZER_TABLE.keys + [("prior", "Prior", "Prior")],
    metrics=[_metric(m) for m in ("bits_per_token", "sample_usage", "fd_classifier", "precision", "recall", "gfid")],
)
CLASSIFIER_TABLE = TableSpec(keys=TOKENIZER_TABLE.keys,
                             metrics=[_metric(m) for m in ("accuracy", "usage", "usage_train", "perplexity")])
SEEDS_NOTE = "Mean ± sample standard deviation over seeds"


def seeds_note(keys: list[dict], study: str) -> str:
    """SEEDS_NOTE with the seed count; when configurations differ in it (``more_seeds``), says which have more and why."""
    counts: dict[tuple, int] = {}
    for key in keys:
        config = tuple(key.get(f) for f in ("quantizer", "codebook_size", "code_dim", "batch_size"))
        counts[config] = counts.get(config, 0) + 1
    distinct = sorted(set(counts.values())) or [0]  # [0]: a reproduction whose rows this scale does not train
    def seeds(n: int) -> str:
        return f"{n} seed{'' if n == 1 else 's'}"

    if len(distinct) == 1:
        return f"{SEEDS_NOTE} ({seeds(distinct[0])})"
    return (f"{SEEDS_NOTE} ({seeds(distinct[0])} per configuration; {distinct[-1]} for those listed in "
            f"studies.{study}.more_seeds in params.yaml: configurations chaotic with fewer seeds (a standard "
            "deviation above a third of the mean), too close to a claim's threshold to call, or read by a headline "
            "claim, which needs three or more; the Seeds column says which)")


# --------------------------------------------------------------------------- tables


def _metric_row(ident: dict, result: dict) -> dict:
    return {**ident, **{name: (math.nan if value is None else value) for name, value in result["metrics"].items()}}


def summarise(runs: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Mean, sample std and seed count per configuration."""
    group = [field for field, *_ in spec.keys]
    grouped = runs.groupby(group, sort=False)[[m for m, *_ in spec.metrics if m in runs]]
    table = pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1)}, axis=1)
    table.columns = [f"{metric}_{stat}" for stat, metric in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index()


def per_seed_values(runs: pd.DataFrame, summary: pd.DataFrame, group: list[str], metrics: list[str]) -> pd.DataFrame:
    """``summary`` with a ``<metric>_values`` column per metric: each seed's value, in seed order, ';'-joined.

    The claims count how many seeds meet a threshold from these (vqrepro/claims.py)."""
    ordered = runs.sort_values("seed", kind="stable") if "seed" in runs else runs
    joined = {m: ordered.groupby(group, sort=False)[m].agg(lambda v: ";".join(f"{x:.6g}" for x in v if x == x))
              for m in metrics if m in runs}
    out = summary
    for metric, column in joined.items():
        out = out.merge(column.rename(f"{metric}_values").reset_index(), on=group, how="left", sort=False)
    return out


def _cell(row: pd.Series, metric: str, scale: float, decimals: int, pm: str) -> str:
    if row["seeds"] == 0:
        return "failed"
    mean, std = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_std", math.nan)
    if mean is None or math.isnan(mean):
        return "n/a"
    text = f"{mean * scale:.{decimals}f}"
    if row["seeds"] > 1 and not math.isnan(std):
        text += f" {pm} {std * scale:.{decimals}f}"
    return text


def _rows(summary: pd.DataFrame, spec: TableSpec, pm: str, esc=str) -> list[list[str]]:
    return [
        [esc(str(row[field])) for field, *_ in spec.keys] + [str(row.get("seeds_shown", row["seeds"]))]
        + [_cell(row, m, scale, decimals, pm) for m, _, scale, decimals in spec.metrics]
        for _, row in summary.iterrows()
    ]


def render_markdown(summary: pd.DataFrame, spec: TableSpec, title: str, notes: list[str], missing: dict[str, str]) -> str:
    header = [md for _, md, _ in spec.keys] + ["Seeds"] + [t for _, t, *_ in spec.metrics]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(summary, spec, "±")]
    lines += [""] + notes + [f"n/a ({metric}): {reason}." for metric, reason in sorted(missing.items())]
    return "\n".join(lines) + "\n"


def render_latex(summary: pd.DataFrame, spec: TableSpec, title: str, notes: list[str], missing: dict[str, str]) -> str:
    header = [tex for _, _, tex in spec.keys] + ["Seeds"] + [display.latex(t) for _, t, *_ in spec.metrics]
    align = "".join("r" if field in display.AXES else "l" for field, *_ in spec.keys) + "r" * (len(spec.metrics) + 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{display.latex(title)}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in _rows(summary, spec, r"$\pm$", display.latex)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize {display.latex(note)}" for note in notes]
    lines += [rf"\par\footnotesize n/a ({display.latex(m)}): {display.latex(r)}." for m, r in sorted(missing.items())]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _configuration_name(row: pd.Series, fields: list[str]) -> str:
    """A configuration's name in the DVC metrics, e.g. vq_K64_D8: each axis value after its prefix."""
    return "_".join(f"{display.AXES[f].prefix if f in display.AXES else ''}{row[f]}" for f in fields)


def write_tables(study: str, summary: pd.DataFrame, spec: TableSpec, title: str, notes: list[str],
                 missing: dict[str, str], results: Path) -> None:
    write_markdown(results / "tables" / f"{study}.md", render_markdown(summary, spec, title, notes, missing))
    write_text(results / "tables" / f"{study}.tex", render_latex(summary, spec, title, notes, missing))
    write_text(results / "tables" / f"{study}.csv", summary.to_csv(index=False, float_format="%.6g"))
    per_config = {
        _configuration_name(row, [field for field, *_ in spec.keys]): {
            m: (None if math.isnan(row[f"{m}_mean"]) else round(float(row[f"{m}_mean"]), 6)) for m, *_ in spec.metrics
        }
        for _, row in summary.iterrows()
    }
    write_json(results / "metrics" / f"{study}.json", per_config)


# --------------------------------------------------------------------------- figures


def plot_study(summary: pd.DataFrame, title: str, stem: Path, classification: bool = False) -> None:
    """Usage and MSE (or accuracy) against the axis the study varies most, one line per quantizer.

    Other axes that vary become separate lines (e.g. one per D); a study of one grid point
    per quantizer gets bars. The file keeps its historical name, <study>_usage_vs_codebook_size.
    """
    plt = pyplot()
    panels = [("usage", "Codebook usage (%)", 100.0),
              ("accuracy", "Test accuracy (%)", 100.0) if classification else ("mse", "Reconstruction MSE", 1.0)]
    varying = [axis for axis in display.AXES if axis in summary and summary[axis].nunique() > 1]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    if not varying:  # one grid point per quantizer: bars
        names = summary["quantizer"].astype(str).tolist()
        for ax, (metric, ylabel, scale) in zip(axes, panels):
            ax.bar(range(len(summary)), summary[f"{metric}_mean"] * scale,
                   yerr=summary[f"{metric}_std"].fillna(0.0) * scale, capsize=3, color="tab:blue")
            ax.set_xticks(range(len(summary)), names, rotation=40, ha="right", fontsize=7)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, axis="y")
    else:
        x = max(varying, key=lambda axis: summary[axis].nunique())
        others = [axis for axis in varying if axis != x]
        groups = list(summary.groupby(["quantizer", *others], sort=False))
        for i, (ident, part) in enumerate(groups):
            ident = ident if isinstance(ident, tuple) else (ident,)
            label = " ".join([str(ident[0])] + [f"{display.AXES[a].prefix}={v}" for a, v in zip(others, ident[1:])])
            part = part.sort_values(x)
            for ax, (metric, _, scale) in zip(axes, panels):
                ax.errorbar(part[x], part[f"{metric}_mean"] * scale, yerr=part[f"{metric}_std"].fillna(0.0) * scale,
                            capsize=3, label=label, **series_style(i, len(groups)))
        values = sorted(summary[x].unique())
        for ax, (_, ylabel, _) in zip(axes, panels):
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
            ax.minorticks_off()
            ax.set_xlabel(display.AXES[x].figure)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        legend_outside(fig, axes[0])
    axes[0].set_ylim(0, 105)
    fig.suptitle(wrapped(title, 90), fontsize=9)
    fig.tight_layout()
    save_figure(fig, stem)


def plot_quality_over_training(curves: pd.DataFrame, title: str, stem: Path) -> None:
    """Generation quality over prior training (the shape of "Straightening Out the STE", Fig. 4)."""
    plt = pyplot()
    group = [field for field, *_ in GENERATION_TABLE.keys]
    curve = curves.groupby(group + ["step"], sort=False)[["fd_classifier", "bits_per_token"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for (quantizer, k, _, prior), part in curve.groupby(group, sort=False):
        for ax, metric in zip(axes, ("fd_classifier", "bits_per_token")):
            ax.plot(part["step"], part[metric], marker="o", label=f"{quantizer} K={k}, {prior}")
    for ax, label in zip(axes, ("FD (own classifier)", "Test bits/token")):
        ax.set_xlabel("Prior training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: quality over prior training", fontsize=10)
    fig.tight_layout()
    save_figure(fig, stem)


def plot_sample_rows(rows: list[tuple[str, Path]], title: str, stem: Path, per_row: int = 16) -> None:
    """One row of decoded samples (final prior weights) per (label, samples.pt)."""
    import torch

    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(per_row * 0.6, 0.75 * len(rows) + 0.4), squeeze=False)
    for ax, (label, path) in zip(axes[:, 0], rows):
        content = load_tensors(path)
        images = content["samples"][content["final_step"]]["images"][:per_row].float() / 255.0  # (n, C, H, W)
        n, c, h, _ = images.shape
        gap = torch.ones(c, h, 1)  # a white line between samples
        strip = torch.cat([part for i in range(n) for part in ((images[i], gap) if i < n - 1 else (images[i],))], dim=2)
        ax.imshow(strip[0] if c == 1 else strip.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(f"{title}: samples", fontsize=9)
    fig.tight_layout()
    save_figure(fig, stem)


# --------------------------------------------------------------------------- studies


def _note_missing(missing: dict[str, str], result: dict) -> None:
    """Keep the first reason any run gave for each metric it could not compute (the table's n/a footnotes)."""
    for metric, reason in result.get("missing", {}).items():
        missing.setdefault(metric, reason)


# Fewer test tokens than this per code and a rarely chosen code can go unseen: test-split usage undercounts.
SPARSE_TOKENS_PER_CODE = 10


def _note_sparse(sparse: dict[int, tuple[int, int]], k: int, result: dict) -> None:
    """{K: (test tokens, training tokens)} of the runs whose test split has few tokens per code."""
    tokens = result.get("tokens")
    if tokens and tokens.get("test") is not None and tokens["test"] < SPARSE_TOKENS_PER_CODE * k:
        sparse.setdefault(k, (tokens["test"], tokens.get("train")))


def sparse_notes(sparse: dict[int, tuple[int, int]]) -> list[str]:
    return [f"Test-split usage at K = {k} counts {test:,} tokens, {test / k:.1f} per code (under "
            f"{SPARSE_TOKENS_PER_CODE}): a code chosen rarely can go unseen there, so it undercounts; "
            + (f"the training-split column counts {train:,}." if train else "compare the training split.")
            for k, (test, train) in sorted(sparse.items())]


def _read_metrics(metric_files: list[str], idents: list[dict], allow_missing: bool = False
                  ) -> tuple[list[dict], dict[str, str], list[tuple[dict, str]], list[str]]:
    """(a row per run that finished, the n/a reasons, (ident, reason) per run that did not,
    notes on codebook sizes the test split has too few tokens for).

    A missing metrics.json is an error unless its training left a failure record, or
    ``allow_missing`` is set (a report after ``--keep-going``: "not run").
    """
    rows, missing, failures, sparse = [], {}, [], {}
    for path, ident in zip(map(Path, metric_files), idents):
        if path.exists():
            result = json.loads(path.read_text())
            rows.append(_metric_row(ident, result))
            _note_missing(missing, result)
            _note_sparse(sparse, ident["codebook_size"], result)
            continue
        reason = failure_reason(path.parent)
        if reason is None and not allow_missing:
            raise FileNotFoundError(f"{path} is missing and no {FAILURE_RECORD} explains why; run its training job first")
        failures.append((ident, reason or "not run (a job it depends on failed)"))
    return rows, missing, failures, sparse_notes(sparse)


def build_study_report(study: str, title: str, metric_files: list[str], keys: list[dict], results_dir: str | Path,
                       allow_missing: bool = False) -> None:
    """Tables and figure of one study.

    A grid point without metrics.json is an error, unless its training left a
    failure record (then its row reads "failed" and a footnote gives the reason) or
    ``allow_missing`` is set (a report after ``--keep-going``: "not run").
    """
    results = Path(results_dir)
    rows, missing, failures, sparse = _read_metrics(metric_files, keys, allow_missing)
    classification = any("accuracy" in row for row in rows)
    spec = CLASSIFIER_TABLE if classification else TOKENIZER_TABLE
    if any(key.get("batch_size") is not None for key in keys):  # a batch-size axis: one row per batch size too
        spec = TableSpec(keys=spec.keys + [_axis_key("batch_size")], metrics=spec.metrics)
    group = [field for field, *_ in spec.keys]
    frame = pd.DataFrame(rows, columns=list(keys[0]) if not rows else None)
    summary = summarise(frame, spec)
    lost = [k for k, _ in failures if not any(all(r[f] == k[f] for f in group) for r in rows)]
    if lost:  # configurations with no successful seed still get a row, marked failed
        placeholders = pd.DataFrame([{**{f: k[f] for f in group}, "seeds": 0} for k in lost]).drop_duplicates()
        summary = pd.concat([summary, placeholders], ignore_index=True)
    summary = summary.reindex(columns=[*summary.columns, *(f"{m}_{stat}" for m, *_ in spec.metrics
                                                           for stat in ("mean", "std") if f"{m}_{stat}" not in summary)])
    notes = [f"{seeds_note(keys, study)}, on the test split."] + sparse
    notes += [f"Failed: {k['quantizer']} K={k['codebook_size']} D={k['code_dim']} seed {k['seed']}: {reason}"
              for k, reason in failures]
    write_tables(study, summary, spec, title, notes, missing, results)
    plot_study(summary, title, results / "figures" / f"{study}_usage_vs_codebook_size", classification)


def build_generation_report(study: str, title: str, keys: list, classifier: str, runs_dir: str | Path,
                            classifier_metrics: str | Path, results_dir: str | Path) -> None:
    results, runs_dir = Path(results_dir), Path(runs_dir)
    rows, curves, missing, samples = [], [], {}, {}
    for key in keys:
        result = json.loads((runs_dir / key.path / runs.GENERATION.format(classifier=classifier)).read_text())
        ident = {"quantizer": key.tokenizer.quantizer, "codebook_size": key.tokenizer.codebook_size,
                 "code_dim": key.tokenizer.code_dim, "prior": key.prior}
        rows.append(_metric_row(ident, result))
        curves += [{**ident, **point} for point in result["curve"]]
        _note_missing(missing, result)
        label = f"{key.tokenizer.quantizer} K={key.tokenizer.codebook_size}\n{key.prior}"
        samples.setdefault(label, runs_dir / key.path / runs.SAMPLES)  # first seed of each configuration
        num_samples = result["num_samples"]
    accuracy = json.loads(Path(classifier_metrics).read_text())["test_accuracy"]
    notes = [f"{SEEDS_NOTE}; {num_samples} samples per prior, scored against the test split.",
             (f"FD (own classifier): Fréchet distance in the penultimate features of the pipeline's own classifier "
             f"(test accuracy {accuracy:.3f}); not comparable with FID. Precision/recall: k-NN (k = 3) in the same features."),
             "Bits/token: test-split negative log-likelihood; MaskGIT scored under raster-order decoding."]
    summary = summarise(pd.DataFrame(rows), GENERATION_TABLE)
    write_tables(study, summary, GENERATION_TABLE, title, notes, missing, results)
    plot_quality_over_training(pd.DataFrame(curves), title, results / "figures" / f"{study}_quality_over_training")
    plot_sample_rows(list(samples.items()), title, results / "figures" / f"{study}_samples")


# --------------------------------------------------------------------------- reproductions (the papers' tables)


def reproduction_spec_table(spec: dict) -> TableSpec:
    keys = [("row", "Method", "Method")] + [_axis_key(axis) for axis in spec.get("axes", [])]
    return TableSpec(keys=keys, metrics=[_metric(m) for m in spec["metrics"]])


def pivot_summary(summary: pd.DataFrame, spec: TableSpec, pivot: str) -> tuple[pd.DataFrame, TableSpec]:
    """The paper's wide layout: one column group per value of ``pivot`` (e.g. rFID and usage for each K)."""
    keys = [k for k in spec.keys if k[0] != pivot]
    group = [field for field, *_ in keys]
    wide, metrics = summary[group].drop_duplicates().reset_index(drop=True), []  # rows in the table's order
    for value in sorted(summary[pivot].unique()):
        part = summary[summary[pivot] == value].drop(columns=[pivot])
        prefix = f"{display.AXES[pivot].column}={value}"
        renamed = {f"{m}_{stat}": f"{m}@{value}_{stat}" for m, *_ in spec.metrics for stat in ("mean", "std")}
        part = part.rename(columns={**renamed, "seeds": f"seeds@{value}"})
        wide = wide.merge(part, on=group, how="left", sort=False)
        metrics += [(f"{m}@{value}", f"{title} {prefix}", scale, decimals) for m, title, scale, decimals in spec.metrics]
    seed_columns = [c for c in wide.columns if c.startswith("seeds@")]
    counts = wide[seed_columns].fillna(0).astype(int)
    wide["seeds"] = counts.min(axis=1)
    # Column groups with different seed counts (more_seeds): one count per group, in column order.
    wide["seeds_shown"] = [str(row.iloc[0]) if row.nunique() == 1 else " / ".join(map(str, row))
                           for _, row in counts.iterrows()]
    return wide.drop(columns=seed_columns), TableSpec(keys=keys, metrics=metrics)


def build_reproduction_report(name: str, spec: dict, metric_files: list[str], keys: list, results_dir: str | Path,
                              scale: str, setting: str, paper_dir: str | Path, dataset: str = "") -> None:
    """One table or figure of a paper, rebuilt from its study's runs, and compared with the published numbers.

    Writes results/tables/<name>.{md,tex,csv}, results/metrics/<name>.json,
    results/paper_vs_repro/<name>.md and, when the spec asks for one, results/figures/<name>_*.{png,pdf}.
    """
    from . import compare

    results = Path(results_dir)
    spec_table = reproduction_spec_table(spec)
    idents = [{"row": row_label(spec, key.quantizer), "quantizer": key.quantizer, "codebook_size": key.codebook_size,
               "code_dim": key.code_dim, "batch_size": key.batch_size, "seed": key.seed, "run": str(Path(path).parent)}
              for path, key in zip(metric_files, keys)]
    rows, missing, failures, sparse = _read_metrics(metric_files, idents)
    # Every grid field identifies a row (a field that is not an axis has one value per row: vqrepro.config checks)
    group = ["row", "quantizer", "codebook_size", "code_dim"] + (["batch_size"] if any(k.batch_size for k in keys) else [])
    full = TableSpec(keys=[(f, f, f) for f in group], metrics=spec_table.metrics)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=group)
    summary = summarise(frame, full) if rows else pd.DataFrame(columns=group + ["seeds"])
    if rows:
        summary = per_seed_values(frame, summary, group, list(spec["metrics"]))
    for ident, _ in failures:
        if not (summary[group] == pd.Series({f: ident[f] for f in group})).all(axis=1).any():
            summary = pd.concat([summary, pd.DataFrame([{**{f: ident[f] for f in group}, "seeds": 0}])], ignore_index=True)
    summary = summary.reindex(columns=[*summary.columns, *(f"{m}_{stat}" for m, *_ in spec_table.metrics
                                                           for stat in ("mean", "std") if f"{m}_{stat}" not in summary)])
    order = {preset: i for i, preset in enumerate(spec["rows"])}
    summary = summary.sort_values(by=["quantizer", *spec.get("axes", [])],
                                  key=lambda col: col.map(order) if col.name == "quantizer" else col,
                                  kind="stable").reset_index(drop=True)
    notes = [f"Reproduces {spec['paper']}, {spec['reproduces']}.",
             f"Measured at {scale} scale: {setting}.",
             f"{seeds_note(idents, spec['study'])}, on the test split. Rows: the paper's names; presets in params.yaml: "
             + ", ".join(f"{row_label(spec, p)} = {p}" for p in spec["rows"]) + "."]
    notes += spec.get("notes", [])  # what a row is, where the paper's label and its code differ
    notes += sparse + [f"Failed: {i['quantizer']} {i['run']}: {reason}" for i, reason in failures]
    shown, shown_spec = summary, spec_table
    if spec.get("pivot"):
        per_seed = [c for c in summary.columns if c.endswith("_values")]
        shown, shown_spec = pivot_summary(summary.drop(columns=["quantizer", *per_seed]), spec_table, spec["pivot"])
    title = f"{spec['paper']}: {spec['reproduces']}"
    relevant_missing = {m: r for m, r in missing.items() if m in spec["metrics"]}
    write_markdown(results / "tables" / f"{name}.md", render_markdown(shown, shown_spec, title, notes, relevant_missing))
    write_text(results / "tables" / f"{name}.tex", render_latex(shown, shown_spec, title, notes, relevant_missing))
    write_text(results / "tables" / f"{name}.csv", summary.to_csv(index=False, float_format="%.6g"))
    write_json(results / "metrics" / f"{name}.json", {
        "configurations": {
            _configuration_name(row, ["quantizer", *spec.get("axes", [])]): {
                m: (None if pd.isna(row[f"{m}_mean"]) else round(float(row[f"{m}_mean"]), 6)) for m in spec["metrics"]}
            for _, row in summary.iterrows()},
        "not_available": relevant_missing,
        "scale": scale,
    })
    write_markdown(results / "paper_vs_repro" / f"{name}.md",
                   compare.paper_vs_repro(name, spec, summary, Path(paper_dir), scale, setting, relevant_missing))
    # Every reproduction has a figure: the paper's own, or bars of its first metric.
    figure = spec.get("figure") or {"kind": "bars", "y": [spec["metrics"][0]]}
    # The figure names the data it was measured on: the paper's setting is in `reproduces`.
    figure_title = f"{wrapped(title, 75)}\nours: {scale} scale" + (f", data set {dataset}" if dataset else "")
    plot_reproduction(figure, summary, spec, figure_title, results / "figures" / f"{name}_figure", runs=pd.DataFrame(rows))


CURVE_TITLES = {"batch_usage": "Active codes in a batch (share of K)", "codebook": "Quantisation error ||sg(z) - z_q||²",
                "batch_perplexity": "Batch perplexity", "recon": "Reconstruction loss", "xent": "Cross-entropy"}


def plot_reproduction(figure: dict, summary: pd.DataFrame, spec: dict, title: str, stem: Path, runs: pd.DataFrame) -> None:
    plt = pyplot()
    ys = figure["y"]
    fig, axes = plt.subplots(1, len(ys), figsize=(4.6 * len(ys), 3.6), squeeze=False)
    axes = axes[0]
    others = [a for a in spec.get("axes", []) if a != figure.get("x")]

    def label(row) -> str:
        return " ".join([row["row"]] + [f"{display.AXES[a].column}={row[a]}" for a in others])

    if figure["kind"] == "bars":
        labels = [label(row) for _, row in summary.iterrows()]
        for ax, metric in zip(axes, ys):
            _, mtitle, scale, _ = _metric(metric)
            ax.bar(range(len(summary)), summary[f"{metric}_mean"] * scale,
                   yerr=summary[f"{metric}_std"].fillna(0.0) * scale, capsize=3, color="tab:blue")
            ax.set_xticks(range(len(summary)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(mtitle)
            ax.grid(alpha=0.3, axis="y")
    elif figure["kind"] == "lines":
        x = figure["x"]
        for ax, metric in zip(axes, ys):
            _, mtitle, scale, _ = _metric(metric)
            groups = list(summary.groupby(["row", *others], sort=False))
            for i, (_, part) in enumerate(groups):
                part = part.sort_values(x)
                ax.errorbar(part[x], part[f"{metric}_mean"] * scale, yerr=part[f"{metric}_std"].fillna(0.0) * scale,
                            capsize=3, label=label(part.iloc[0]), **series_style(i, len(groups)))
            values = sorted(summary[x].unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
            ax.minorticks_off()
            ax.set_xlabel(display.AXES[x].figure)
            ax.set_ylabel(mtitle)
            ax.grid(alpha=0.3)
        legend_outside(fig, axes[0])
    else:  # training_curves: train_log.csv of every run, mean over seeds
        logs = []
        for _, run in runs.iterrows():
            log = pd.read_csv(Path(run["run"]) / TRAIN_LOG)
            log = log[log["step"] <= figure.get("steps", log["step"].max())]
            logs.append(log.assign(row=label(run)))
        curves = pd.concat(logs).groupby(["row", "step"], sort=False).mean(numeric_only=True).reset_index()
        for ax, column in zip(axes, ys):
            rows_ = list(curves.groupby("row", sort=False))
            for i, (row, part) in enumerate(rows_):
                if column in part and part[column].notna().any():
                    ax.plot(part["step"], part[column], label=row, color=series_style(i, len(rows_))["color"])
            ax.set_xlabel("Training step")
            ax.set_ylabel(CURVE_TITLES.get(column, column))
            ax.grid(alpha=0.3)
        legend_outside(fig, axes[0])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, stem)
