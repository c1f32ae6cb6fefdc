"""Results -> paper-style tables and figures, one study at a time.

Inputs: every ``metrics.json`` of a study's grid. Outputs:
- results/tables/<study>.{md,tex}: mean +- std over seeds, n/a with the reason as a footnote
- results/tables/<study>.csv: the same numbers, one column per statistic (machine-readable)
- results/figures/<study>_usage_vs_codebook_size.{png,pdf}
- results/metrics/<study>.json: the per-run means, registered as DVC metrics
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .io import write_json, write_text

# (metric key, column title, scale applied for display, decimals)
COLUMNS = [
    ("mse", "MSE (1e-3)", 1e3, 2),
    ("psnr", "PSNR (dB)", 1.0, 2),
    ("ssim", "SSIM", 1.0, 3),
    ("lpips", "LPIPS", 1.0, 3),
    ("rfid", "rFID", 1.0, 2),
    ("usage", "Usage (%)", 100.0, 1),
    ("perplexity", "Perplexity", 1.0, 1),
]
GROUP = ["quantizer", "codebook_size", "code_dim"]


def collect(metric_files: list[str | Path], keys: list[dict]) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per run; ``keys`` gives each file's grid point. Returns (frame, reasons for missing metrics)."""
    rows, missing = [], {}
    for path, key in zip(metric_files, keys):
        result = json.loads(Path(path).read_text())
        row = dict(key)
        row.update({name: (math.nan if value is None else value) for name, value in result["metrics"].items()})
        rows.append(row)
        for name, reason in result.get("missing", {}).items():
            missing.setdefault(name, reason)
    return pd.DataFrame(rows), missing


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    metric_names = [c for c, *_ in COLUMNS if c in runs]
    grouped = runs.groupby(GROUP, sort=False)[metric_names]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    table = pd.concat({"mean": mean, "std": std}, axis=1)
    table.columns = [f"{metric}_{stat}" for stat, metric in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index()


def _cell(row: pd.Series, metric: str, scale: float, decimals: int, pm: str) -> str:
    mean, std = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_std", math.nan)
    if mean is None or math.isnan(mean):
        return "n/a"
    text = f"{mean * scale:.{decimals}f}"
    if row["seeds"] > 1 and not math.isnan(std):
        text += f" {pm} {std * scale:.{decimals}f}"
    return text


def render_markdown(summary: pd.DataFrame, title: str, missing: dict[str, str]) -> str:
    header = ["Quantizer", "K", "D", "Seeds"] + [title_ for _, title_, *_ in COLUMNS]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [row["quantizer"], str(row["codebook_size"]), str(row["code_dim"]), str(row["seeds"])]
        cells += [_cell(row, m, s, d, "±") for m, _, s, d in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± sample standard deviation over seeds, on the test split."]
    for metric, reason in sorted(missing.items()):
        lines.append(f"n/a ({metric}): {reason}.")
    return "\n".join(lines) + "\n"


def render_latex(summary: pd.DataFrame, title: str, missing: dict[str, str]) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")

    header = ["Quantizer", "$K$", "$D$", "Seeds"] + [esc(t) for _, t, *_ in COLUMNS]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(title)}}}",
             r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for _, row in summary.iterrows():
        cells = [esc(row["quantizer"]), str(row["codebook_size"]), str(row["code_dim"]), str(row["seeds"])]
        cells += [_cell(row, m, s, d, r"$\pm$") for m, _, s, d in COLUMNS]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for metric, reason in sorted(missing.items()):
        lines.append(rf"\par\footnotesize n/a ({esc(metric)}): {esc(reason)}.")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _save_figure(fig, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix, extra in ((".png", {"dpi": 150}), (".pdf", {"metadata": {"CreationDate": None}})):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp{suffix}")
        fig.savefig(tmp, **extra)
        tmp.replace(path)


def plot_against_codebook_size(summary: pd.DataFrame, title: str, stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    panels = [("usage", "Codebook usage (%)", 100.0), ("mse", "Reconstruction MSE", 1.0)]
    several_dims = summary["code_dim"].nunique() > 1
    for (quantizer, dim), part in summary.groupby(["quantizer", "code_dim"], sort=False):
        part = part.sort_values("codebook_size")
        label = f"{quantizer} (D={dim})" if several_dims else quantizer
        for ax, (metric, _, scale) in zip(axes, panels):
            std = part[f"{metric}_std"].fillna(0.0) * scale
            ax.errorbar(part["codebook_size"], part[f"{metric}_mean"] * scale, yerr=std, marker="o", capsize=3, label=label)
    sizes = sorted(summary["codebook_size"].unique())
    for ax, (_, ylabel, _) in zip(axes, panels):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(k) for k in sizes])
        ax.minorticks_off()
        ax.set_xlabel("Codebook size K")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 105)
    axes[0].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save_figure(fig, stem)
    plt.close(fig)


def build_study_report(study: str, title: str, metric_files: list[str], keys: list[dict], results_dir: str | Path) -> None:
    results = Path(results_dir)
    runs, missing = collect(metric_files, keys)
    summary = summarise(runs)
    write_text(results / "tables" / f"{study}.md", render_markdown(summary, title, missing))
    write_text(results / "tables" / f"{study}.tex", render_latex(summary, title, missing))
    write_text(results / "tables" / f"{study}.csv", summary.to_csv(index=False, float_format="%.6g"))
    plot_against_codebook_size(summary, title, results / "figures" / f"{study}_usage_vs_codebook_size")
    per_run = {
        f"{r.quantizer}_K{r.codebook_size}_D{r.code_dim}": {
            m: (None if math.isnan(getattr(r, f"{m}_mean")) else round(float(getattr(r, f"{m}_mean")), 6))
            for m, *_ in COLUMNS
        }
        for r in summary.itertuples()
    }
    write_json(results / "metrics" / f"{study}.json", per_run)


# --------------------------------------------------------------------------- stage 2

GENERATION_COLUMNS = [
    ("bits_per_token", "Bits/token", 1.0, 3),
    ("sample_usage", "Sample usage (%)", 100.0, 1),
    ("fd_classifier", "FD (own classifier)", 1.0, 2),
    ("precision", "Precision", 1.0, 3),
    ("recall", "Recall", 1.0, 3),
    ("gfid", "gFID", 1.0, 2),
]
GENERATION_GROUP = ["quantizer", "codebook_size", "code_dim", "prior"]


def _render_rows(summary: pd.DataFrame, columns, pm: str, esc=lambda t: t) -> list[list[str]]:
    rows = []
    for _, row in summary.iterrows():
        cells = [esc(row["quantizer"]), str(row["codebook_size"]), str(row["code_dim"]), esc(row["prior"]), str(row["seeds"])]
        rows.append(cells + [_cell(row, m, s, d, pm) for m, _, s, d in columns])
    return rows


def build_generation_report(study: str, title: str, keys: list, classifier: str, runs_dir: str | Path,
                            classifier_metrics: str | Path, results_dir: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import load_tensors

    results, runs_dir = Path(results_dir), Path(runs_dir)
    rows, curves, missing = [], [], {}
    for key in keys:
        result = json.loads((runs_dir / key.path / f"generation_{classifier}.json").read_text())
        ident = {"quantizer": key.tokenizer.quantizer, "codebook_size": key.tokenizer.codebook_size,
                 "code_dim": key.tokenizer.code_dim, "prior": key.prior}
        rows.append({**ident, **{m: (math.nan if v is None else v) for m, v in result["metrics"].items()}})
        curves += [{**ident, "seed": (key.tokenizer.seed, key.seed), **point} for point in result["curve"]]
        for name, reason in result.get("missing", {}).items():
            missing.setdefault(name, reason)
        num_samples = result["num_samples"]
    runs = pd.DataFrame(rows)
    grouped = runs.groupby(GENERATION_GROUP, sort=False)[[c for c, *_ in GENERATION_COLUMNS]]
    summary = pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1)}, axis=1)
    summary.columns = [f"{metric}_{stat}" for stat, metric in summary.columns]
    summary.insert(0, "seeds", grouped.size())
    summary = summary.reset_index()
    accuracy = json.loads(Path(classifier_metrics).read_text())["test_accuracy"]

    notes = [f"Mean ± sample standard deviation over seeds; {num_samples} samples per prior, scored against the test split.",
             f"FD (own classifier): Fréchet distance in the penultimate features of the pipeline's own classifier "
             f"(test accuracy {accuracy:.3f}); not comparable with FID. Precision/recall: k-NN (k = 3) in the same features.",
             "Bits/token: test-split negative log-likelihood; MaskGIT scored under raster-order decoding."]
    header = ["Tokenizer", "K", "D", "Prior", "Seeds"] + [t for _, t, *_ in GENERATION_COLUMNS]
    md = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(cells) + " |" for cells in _render_rows(summary, GENERATION_COLUMNS, "±")]
    md += [""] + notes + [f"n/a ({m}): {r}." for m, r in sorted(missing.items())]
    write_text(results / "tables" / f"{study}.md", "\n".join(md) + "\n")

    def esc(text: str) -> str:
        return str(text).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    tex = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(title)}}}", r"\begin{tabular}{llll" + "r" * (len(header) - 4) + "}",
           r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    tex += [" & ".join(cells) + r" \\" for cells in _render_rows(summary, GENERATION_COLUMNS, r"$\pm$", esc)]
    tex += [r"\bottomrule", r"\end{tabular}"] + [rf"\par\footnotesize {esc(n)}" for n in notes]
    tex += [rf"\par\footnotesize n/a ({esc(m)}): {esc(r)}." for m, r in sorted(missing.items())] + [r"\end{table}"]
    write_text(results / "tables" / f"{study}.tex", "\n".join(tex) + "\n")
    write_text(results / "tables" / f"{study}.csv", summary.to_csv(index=False, float_format="%.6g"))

    # Generation quality over prior training (the shape of "Straightening Out the STE", Fig. 4).
    curve = pd.DataFrame(curves).groupby(GENERATION_GROUP + ["step"], sort=False)[["fd_classifier", "bits_per_token"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for (quantizer, k, d, prior), part in curve.groupby(GENERATION_GROUP, sort=False):
        for ax, metric in zip(axes, ("fd_classifier", "bits_per_token")):
            ax.plot(part["step"], part[metric], marker="o", label=f"{quantizer} K={k}, {prior}")
    for ax, label in zip(axes, ("FD (own classifier)", "Test bits/token")):
        ax.set_xlabel("Prior training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: quality over prior training", fontsize=10)
    fig.tight_layout()
    _save_figure(fig, results / "figures" / f"{study}_quality_over_training")
    plt.close(fig)

    # One row of decoded samples per tokenizer x prior (first seed of each).
    firsts = {}
    for key in keys:
        firsts.setdefault((key.tokenizer.quantizer, key.tokenizer.codebook_size, key.tokenizer.code_dim, key.prior), key)
    per_row = 16
    fig, axes = plt.subplots(len(firsts), 1, figsize=(per_row * 0.6, 0.75 * len(firsts) + 0.4), squeeze=False)
    for ax, ((quantizer, k, d, prior), key) in zip(axes[:, 0], firsts.items()):
        content = load_tensors(runs_dir / key.path / "samples.pt")
        images = content["samples"][content["final_step"]]["images"][:per_row].float() / 255.0
        strip = images.permute(0, 2, 3, 1)  # (n, H, W, C)
        strip = torch_cat_width(strip)
        ax.imshow(strip.squeeze(-1) if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"{quantizer} K={k}\n{prior}", rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(f"{title}: samples", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, results / "figures" / f"{study}_samples")
    plt.close(fig)

    per_config = {
        f"{r.quantizer}_K{r.codebook_size}_D{r.code_dim}_{r.prior}": {
            m: (None if math.isnan(getattr(r, f"{m}_mean")) else round(float(getattr(r, f"{m}_mean")), 6))
            for m, *_ in GENERATION_COLUMNS
        }
        for r in summary.itertuples()
    }
    write_json(results / "metrics" / f"{study}.json", per_config)


def torch_cat_width(images):
    """(n, H, W, C) -> (H, n*(W+1)-1, C) with a one-pixel white gap between images."""
    import torch

    n, h, w, c = images.shape
    gap = torch.ones(h, 1, c)
    parts = []
    for i in range(n):
        parts.append(images[i])
        if i < n - 1:
            parts.append(gap)
    return torch.cat(parts, dim=1)
