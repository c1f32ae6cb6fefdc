"""The convergence study: codebook usage, perplexity and MSE against training steps.

A study whose training preset sets ``eval_every`` leaves ``convergence.csv`` in every
run folder (whole-split measurements every ``eval_every`` steps, vqrepro/train.py).
Because the loop's batches and learning rate are pure functions of (seed, step), the
curve of a long run at step N is the state a run of N steps ends in, so one long run
per method shows where a shorter schedule would stop.

Outputs, for study S:
- results/tables/S_over_steps.md: one row per quantizer (and K, D), training-split usage
  at each measured step, the step from which usage stays within ``tolerance`` of its
  final value ("settled by"), and whether each study that trains with the same loop
  stops after that step;
- results/tables/S_over_steps.csv: every measurement, long format;
- results/figures/S_over_steps.{png,pdf}: usage (train solid, test dashed), perplexity
  and MSE against steps, one colour per quantizer;
- results/metrics/S_over_steps.json: the settled step and final values per quantizer.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import write_json
from .pages import write_markdown
from .plotting import pyplot, save_figure

DEFAULT_TOLERANCE = 0.02  # usage (a fraction) within 2 percentage points of its final value


def settled_step(curve: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> int | None:
    """First measured step from which training-split usage stays within ``tolerance`` of the last value.

    None when only the last measurement is within tolerance (the run may not have settled).
    """
    curve = curve.sort_values("step")
    final = curve["usage"].iloc[-1]
    within = (curve["usage"] - final).abs() <= tolerance + 1e-9  # a difference of exactly the tolerance counts
    # the settled step is the start of the trailing run of measurements within tolerance
    steps = curve["step"].tolist()
    first = len(steps) - 1
    while first > 0 and within.iloc[first - 1]:
        first -= 1
    return None if first == len(steps) - 1 else int(steps[first])


def _label(row) -> str:
    return f"{row.quantizer} (K={row.codebook_size}, D={row.code_dim})"


def build_convergence_report(study: str, title: str, curve_files: list[str], keys: list[dict],
                             results_dir: str | Path, followers: dict[str, int], scale: str,
                             tolerance: float = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """``followers``: {study name: its steps} of the studies whose schedule this study justifies."""
    frames = []
    for path, key in zip(curve_files, keys):
        frame = pd.read_csv(path)
        if frame.empty:
            raise ValueError(f"{path} holds no measurements; set eval_every in the study's training preset")
        frames.append(frame.assign(**key))
    data = pd.concat(frames, ignore_index=True)
    group = ["quantizer", "codebook_size", "code_dim"]
    train = data[data["split"] == "train"]
    # seeds: mean per step (the usage curve of one configuration)
    mean_train = train.groupby(group + ["step"], sort=False)[["usage", "perplexity", "mse"]].mean().reset_index()
    test = data[data["split"] == "test"].groupby(group + ["step"], sort=False)[["usage", "mse"]].mean().reset_index()

    steps = sorted(mean_train["step"].unique())
    rows, metrics = [], {}
    for ident, curve in mean_train.groupby(group, sort=False):
        settled = settled_step(curve, tolerance)
        last = curve.sort_values("step").iloc[-1]
        last_test = test[(test[group] == pd.Series(dict(zip(group, ident)))).all(axis=1)].sort_values("step").iloc[-1]
        rows.append({"ident": ident, "curve": curve.set_index("step")["usage"], "settled": settled,
                     "test_usage": last_test["usage"], "mse": last_test["mse"]})
        name = "_".join([ident[0], f"K{ident[1]}", f"D{ident[2]}"])
        metrics[name] = {"settled_step": settled, "final_train_usage": float(last["usage"]),
                         "final_test_usage": float(last_test["usage"]), "final_test_mse": float(last_test["mse"]),
                         "final_perplexity": float(last["perplexity"])}

    shown = steps if len(steps) <= 10 else [s for i, s in enumerate(steps) if i % 2 == 1 or s == steps[-1]]
    header = ["Quantizer", "K", "D", *[f"{s}" for s in shown], "Settled by", "Test usage (%)", "Test MSE (1e-3)"]
    lines = [f"# {title}", "", f"Codebook usage (%) on the training split against training steps ({scale} scale). "
             f"Settled by: the first measured step from which usage stays within {100 * tolerance:.0f} points of "
             "its final value (-: not settled before the last measurement).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        q, k, d = row["ident"]
        cells = [f"{100 * row['curve'].get(s, float('nan')):.1f}" for s in shown]
        lines.append("| " + " | ".join([q, str(k), str(d), *cells, str(row["settled"] or "-"),
                                        f"{100 * row['test_usage']:.1f}", f"{1e3 * row['mse']:.2f}"]) + " |")
    lines.append("")
    latest = [r["settled"] for r in rows]
    if followers:
        needed = None if any(s is None for s in latest) else max(latest)
        lines.append("Studies trained with this loop, and whether their schedule ends after every method here settled:")
        lines.append("")
        for name, their_steps in followers.items():
            verdict = ("not known: some method had not settled by the last measurement" if needed is None
                       else "yes" if their_steps >= needed else f"no: {needed} steps needed")
            lines.append(f"- `{name}`: {their_steps} steps; settled: {verdict}")
        lines.append("")
    results = Path(results_dir)
    write_markdown(results / "tables" / f"{study}_over_steps.md", "\n".join(lines))
    data.sort_values(group + ["seed", "split", "step"]).to_csv(results / "tables" / f"{study}_over_steps.csv",
                                                              index=False, float_format="%.6g")
    write_json(results / "metrics" / f"{study}_over_steps.json", metrics)
    plot_convergence(mean_train, test, group, f"{title} ({scale} scale)", results / "figures" / f"{study}_over_steps")
    return mean_train


def plot_convergence(train: pd.DataFrame, test: pd.DataFrame, group: list[str], title: str, stem: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    colours = plt.get_cmap("tab10")
    for i, (ident, curve) in enumerate(train.groupby(group, sort=False)):
        colour = colours(i % 10)
        label = _label(pd.Series(dict(zip(group, ident))))
        axes[0].plot(curve["step"], 100 * curve["usage"], color=colour, label=label)
        held_out = test[(test[group] == pd.Series(dict(zip(group, ident)))).all(axis=1)]
        axes[0].plot(held_out["step"], 100 * held_out["usage"], color=colour, linestyle="--")
        axes[1].plot(curve["step"], curve["perplexity"], color=colour)
        axes[2].plot(curve["step"], curve["mse"], color=colour)
    axes[0].set_ylabel("codebook usage (%): train solid, test dashed")
    axes[1].set_ylabel("perplexity (train split)")
    axes[2].set_ylabel("MSE (train split)")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    save_figure(fig, stem)
