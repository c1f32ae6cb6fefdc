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


def plot_against_codebook_size(summary: pd.DataFrame, title: str, stem: Path) -> list[Path]:
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
    stem.parent.mkdir(parents=True, exist_ok=True)
    outputs = []
    for suffix, extra in ((".png", {"dpi": 150}), (".pdf", {"metadata": {"CreationDate": None}})):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp{suffix}")
        fig.savefig(tmp, **extra)
        tmp.replace(path)
        outputs.append(path)
    plt.close(fig)
    return outputs


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
