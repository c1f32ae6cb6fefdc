"""Matplotlib without a display, and figures saved as PNG + PDF that reruns reproduce byte for byte."""
from __future__ import annotations

import textwrap
from pathlib import Path

MARKERS = "osD^v<>ph*"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: Path) -> None:
    """PNG and PDF, atomically; the PDF carries no creation date so that reruns are byte-identical."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix, extra in ((".png", {"dpi": 150}), (".pdf", {"metadata": {"CreationDate": None}})):
        path = stem.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp{suffix}")
        fig.savefig(tmp, bbox_inches="tight", **extra)  # "tight": a legend outside the panels is kept
        tmp.replace(path)
    pyplot().close(fig)


def wrapped(title: str, width: int) -> str:
    """A figure title broken into lines of at most ``width`` characters, so that it fits the figure."""
    return "\n".join(textwrap.wrap(title, width)) or title


def series_style(i: int, n: int) -> dict:
    """Colour and marker of the i-th of n lines: distinct for up to 20 lines (colour and marker both change)."""
    colours = pyplot().get_cmap("tab10" if n <= 10 else "tab20")
    return {"color": colours(i % colours.N), "marker": MARKERS[i % len(MARKERS)]}


def legend_outside(fig, ax, fontsize: int = 7) -> None:
    """The legend to the right of the panels, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=fontsize, frameon=False)
