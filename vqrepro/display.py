"""How results are shown: each metric's and grid axis's names, scale and decimals, and text made
safe for a Markdown table cell or LaTeX.

The tables (vqrepro.report), the paper comparisons (vqrepro.compare) and the claims page
(vqrepro.claims) all read this one table, so a metric reads the same everywhere it appears.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDisplay:
    title: str     # column title in tables (LaTeX: escaped), y-axis label in reproduction figures
    scale: float   # shown value = raw value * scale
    decimals: int
    suffix: str = ""  # after a value in running text: "98.4%" for usage, "2.35e-3" for MSE

    @property
    def fraction(self) -> bool:
        """The raw values are fractions (0 to 1), shown as percentages (papers often print them so too)."""
        return self.suffix == "%"


METRICS = {
    # tokenizers (reconstruction or classification)
    "mse": MetricDisplay("MSE (1e-3)", 1e3, 2, "e-3"),
    "psnr": MetricDisplay("PSNR (dB)", 1.0, 2),
    "ssim": MetricDisplay("SSIM", 1.0, 3),
    "lpips": MetricDisplay("LPIPS", 1.0, 3),
    "rfid": MetricDisplay("rFID", 1.0, 2),
    "usage": MetricDisplay("Usage (%)", 100.0, 1, "%"),
    "usage_train": MetricDisplay("Usage, train (%)", 100.0, 1, "%"),
    "perplexity": MetricDisplay("Perplexity", 1.0, 1),
    "accuracy": MetricDisplay("Accuracy (%)", 100.0, 1, "%"),
    # priors (generation studies)
    "bits_per_token": MetricDisplay("Bits/token", 1.0, 3),
    "sample_usage": MetricDisplay("Sample usage (%)", 100.0, 1, "%"),
    "fd_classifier": MetricDisplay("FD (own classifier)", 1.0, 2),
    "precision": MetricDisplay("Precision", 1.0, 3),
    "recall": MetricDisplay("Recall", 1.0, 3),
    "gfid": MetricDisplay("gFID", 1.0, 2),
}
FRACTION_METRICS = tuple(name for name, shown in METRICS.items() if shown.fraction)


def metric(name: str) -> MetricDisplay:
    """A metric's display; one without an entry is shown under its own name, unscaled."""
    return METRICS.get(name, MetricDisplay(name, 1.0, 3))


@dataclass(frozen=True)
class AxisDisplay:
    column: str      # column title in our tables (Markdown), and "K=64" in reproduction labels
    latex: str       # column title in LaTeX tables
    comparison: str  # column title in the paper-vs-reproduction tables
    figure: str      # x-axis label in figures
    prefix: str      # in configuration names (vq_K64_D8, the DVC metrics) and study-figure legends (D=8)


AXES = {
    "codebook_size": AxisDisplay("K", "$K$", "K", "Codebook size K", "K"),
    "code_dim": AxisDisplay("D", "$D$", "D", "Code dimension D", "D"),
    "batch_size": AxisDisplay("Batch", "Batch", "Batch size", "Batch size", "B"),
}


def markdown_cell(text) -> str:
    """Text inside one cell of a Markdown pipe table: a "|" would end the cell, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


LATEX_SPECIALS = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                  ("±", r"$\pm$"), ("é", r"\'e"))  # the backslash first: the others insert backslashes


def latex(text: str) -> str:
    """Text for LaTeX: its special characters escaped, and the non-ASCII characters our tables use spelt out."""
    for char, escaped in LATEX_SPECIALS:
        text = text.replace(char, escaped)
    return text
