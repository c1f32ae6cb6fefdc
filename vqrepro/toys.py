"""The papers' 2-D toy demonstrations, run with the project's real quantizers.

Four toys, each a small online-training loop over 2-D points ("encoder outputs"):

- ``nsvq_translation``, ``nsvq_scaling``, ``nsvq_split``: "Beyond Stationarity"
  (NS-VQ/TransVQ), supplementary Sec. 11, Toy Demos 1-3. The data distribution
  changes while the codebook trains (the cloud moves; grows or shrinks; splits into
  two clusters in opposite quadrants) and EMA codebook updates are compared with
  NS-VQ; plain VQ (codebook loss + Adam) is shown as a third row.
- ``ste_affine_2d``: "Straightening Out the STE", Appendix A.9 / Figure 10. Data
  N(0, 0.5 I) (512 points), codebook N([-1, -1], 0.3 I) (128 codes), 20 codebook
  updates, commitment beta = 0, lr 0.1; plain VQ against VQ with the learnable
  affine reparameterisation of the codebook.

What the texts leave open and is chosen here (the NS-VQ supplement's equations did
not survive in our copy of the paper, only their prose):

- The drift. The paper's drift (translation), scaling matrix A and split drift are
  "learned online" towards fixed targets. We move each by one gradient step per
  batch on 1/2 ||state - target||^2 with step size ``drift_rate``, i.e.
  state <- state + drift_rate * (target - state): an exponential approach that is
  fast at the start and settles by the end (with the defaults, 99.8% of the way
  after 300 steps). ``drift`` sets the target: the distance the cloud travels
  along (1, 1)/sqrt(2) (translation), the final scale factor (scaling; < 1 is the
  paper's "shrink variant"), or the distance each half travels into its quadrant
  (split: points with x0 >= 0 go towards (+1, +1), the others towards (-1, -1)).
  In ``ste_affine_2d`` it is the codebook's offset: codes start at (-drift, -drift).
- The base cloud is N(0, ``spread``^2 I) with ``num_points`` points; each step
  takes ``points_per_step`` distinct points of it at random (the paper's
  "mini-batch with indices idxs"), and every method sees the same batches and the
  same drift.
- The epoch. NS-VQ's kernel bandwidth decays once per epoch (tau_start *
  tau_decay**epoch, in the real quantizer and in the toy's "after each epoch"), but
  the toy's epoch length is not in our text. We pass epoch = step // ``epoch_steps``
  with 100 steps per epoch (3 epochs in the default run, tau 1 -> 0.73), which keeps
  tau in the range a real training run sees (the paper trains ImageNet for 4
  epochs). Counting an epoch as one pass over the 1024-point cloud (4 steps) would
  decay tau to ~4e-4 by the end; the kernel weights of all but the nearest codes
  then underflow and NS-VQ behaves like plain VQ (measured: 12 of 32 codes active
  against 11 for VQ and 4 for EMA in nsvq_translation, seed 0).
- The codebook starts identical for every method: K points of the initial cloud
  (NS toys), so every code is in use at step 0 and only the change of the data can
  kill codes. The EMA quantizer's running counts start as if each code had been
  used by points_per_step / K points per batch, so a code no batch picks stays where
  it is (the paper's EMA rule updates only assigned codes); the module's own
  zero-count start would instead divide an unused code by ~epsilon on the first
  update and throw it far away, a different failure from the one the toy shows.
- Codebook parameters (VQ, NS-VQ, the affine scale and bias) are trained with Adam
  at ``lr``; EMA has no parameters and updates inside forward. The data carry no
  gradient, so the commitment term and NS-VQ's modified straight-through estimator
  (which only reshapes the task gradient) have no effect here; what differs is how
  each method moves its codes.
- "Active" codes at time t are those nearest to at least one point of the full
  cloud at t (the paper's "full cloud at each step"); the quantisation error is the
  mean over that cloud of the squared distance to the nearest code.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .io import write_json
from .metrics import codebook_usage
from .plotting import pyplot, save_figure
from .quantizers import build_quantizer, nearest_code

#: Every setting a toy understands, with its default. A toy may override defaults
#: (``Toy.defaults``, e.g. the STE paper's 512 points / 128 codes / 20 updates);
#: params.yaml then overrides both.
DEFAULT_SETTINGS: dict = {
    "steps": 300,            # training steps (codebook updates)
    "codebook_size": 32,     # K
    "num_points": 1024,      # size of the base cloud ("full cloud" for plots and metrics)
    "points_per_step": 256,  # mini-batch size: distinct points of the cloud drawn afresh each step
    "epoch_steps": 100,      # steps per epoch as the quantizers see it (NS-VQ's tau decays once per epoch)
    "lr": 0.01,              # Adam learning rate for codebook parameters (VQ, NS-VQ, affine)
    "snapshots": 4,          # figure columns: evenly spaced times from step 0 to the last step
    "seed": 0,               # torch.manual_seed for data, codebook init and batch order
    "spread": 0.5,           # std of the base cloud N(0, spread^2 I)
    "drift": 3.0,            # size of the change (per-toy meaning, see the module docstring)
    "drift_rate": 0.02,      # step size of the online drift update towards its target
    "ema_decay": 0.99,       # EMA quantizer decay (its paper default)
    "nsvq_kernel_weight": 0.01,  # NS-VQ lambda (paper default)
    "nsvq_tau_start": 1.0,       # NS-VQ kernel bandwidth at epoch 0 (paper default)
    "nsvq_tau_decay": 0.9,       # NS-VQ bandwidth decay per epoch (paper text default)
    "affine_lr_scale": 2.0,      # "a" of the learnable affine variant (STE paper: 2 to 10)
}


@dataclass(frozen=True)
class Toy:
    title: str  # the figure's title: which paper figure it is and what it compares
    description: str
    #: row label -> quantizer preset (settings filled in from the toy settings by ``presets``)
    presets: Callable[[dict], dict[str, dict]]
    #: (base cloud, settings, generator) -> initial codebook (K, 2)
    init_codes: Callable[[torch.Tensor, dict, torch.Generator], torch.Tensor]
    #: (progress in [0, 1] towards the target, settings) -> map from base points to current points
    transform: Callable[[float, dict], Callable[[torch.Tensor], torch.Tensor]]
    defaults: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- presets

def _nsvq_presets(s: dict) -> dict[str, dict]:
    return {
        "EMA": {"method": "ema", "decay": s["ema_decay"]},
        "NS-VQ": {"method": "nsvq", "kernel_weight": s["nsvq_kernel_weight"],
                  "tau_start": s["nsvq_tau_start"], "tau_decay": s["nsvq_tau_decay"]},
        "VQ": {"method": "vq"},
    }


def _affine_presets(s: dict) -> dict[str, dict]:
    # beta = 0 as in Figure 10: only the codebook term trains anything.
    return {
        "VQ": {"method": "vq", "commit_weight": 0.0},
        "VQ + affine (learnable)": {"method": "vq", "commit_weight": 0.0, "affine": "learnable",
                                    "affine_lr_scale": s["affine_lr_scale"]},
    }


# ---------------------------------------------------------------------------- codebook inits

def _codes_from_data(base: torch.Tensor, s: dict, gen: torch.Generator) -> torch.Tensor:
    # K distinct points of the initial cloud: every code starts in use.
    return base[torch.randperm(base.shape[0], generator=gen)[: s["codebook_size"]]].clone()


def _codes_offset_gaussian(base: torch.Tensor, s: dict, gen: torch.Generator) -> torch.Tensor:
    # Figure 10: C ~ N([-1, -1], 0.3 I), reading 0.3 I as the covariance (std sqrt(0.3)).
    noise = torch.randn(s["codebook_size"], 2, generator=gen)
    return noise * math.sqrt(0.3) - s["drift"]


# ---------------------------------------------------------------------------- data transforms

_DIAGONAL = torch.tensor([1.0, 1.0]) / math.sqrt(2.0)


def _translate(progress: float, s: dict):
    offset = progress * s["drift"] * _DIAGONAL
    return lambda x: x + offset


def _scale(progress: float, s: dict):
    # A = (1 - p) I + p * drift I: the matrix moves from the identity to the target scaling.
    factor = 1.0 + progress * (s["drift"] - 1.0)
    return lambda x: x * factor


def _split(progress: float, s: dict):
    # The sign of the first coordinate picks the quadrant a point drifts into.
    def apply(x: torch.Tensor) -> torch.Tensor:
        side = torch.where(x[:, :1] >= 0, 1.0, -1.0)
        return x + side * (progress * s["drift"] * _DIAGONAL)
    return apply


def _stationary(progress: float, s: dict):
    return lambda x: x


TOYS: dict[str, Toy] = {
    "nsvq_translation": Toy(
        title="Beyond Stationarity, Toy Demo 1: a translating 2-D cloud, EMA vs NS-VQ codebooks",
        description=("A 2-D cloud translates while the codebook trains: EMA leaves the codes the cloud moves "
                     "away from dead, while NS-VQ's kernel loss pulls every code along "
                     "(Beyond Stationarity, supplementary Toy Demo 1)."),
        presets=_nsvq_presets, init_codes=_codes_from_data, transform=_translate,
    ),
    "nsvq_scaling": Toy(
        title="Beyond Stationarity, Toy Demo 2: a rescaled 2-D cloud, EMA vs NS-VQ codebooks",
        description=("A 2-D cloud is rescaled by an online-learned linear map (expansion by default, shrink "
                     "with drift < 1) while EMA and NS-VQ codebooks train (Beyond Stationarity, supplementary "
                     "Toy Demo 2)."),
        presets=_nsvq_presets, init_codes=_codes_from_data, transform=_scale,
    ),
    "nsvq_split": Toy(
        title="Beyond Stationarity, Toy Demo 3: a 2-D cluster splitting in two, EMA vs NS-VQ codebooks",
        description=("One 2-D cluster splits by the sign of its first coordinate into two clusters drifting into "
                     "opposite quadrants, comparing EMA and NS-VQ codebook updates (Beyond Stationarity, "
                     "supplementary Toy Demo 3)."),
        presets=_nsvq_presets, init_codes=_codes_from_data, transform=_split,
    ),
    "ste_affine_2d": Toy(
        title="Straightening Out the STE, Fig. 10: codes far from the data, plain VQ vs affine reparameterisation",
        description=("Codes initialised away from a stationary 2-D data distribution: with plain VQ only the few "
                     "selected codes move, while the learnable affine reparameterisation moves every code "
                     "towards the data (Straightening Out the STE, Appendix A.9, Figure 10)."),
        presets=_affine_presets, init_codes=_codes_offset_gaussian, transform=_stationary,
        # Figure 10: |P_z| = 512, |Q_z| = 128, 20 updates, lr 0.1, P_z ~ N(0, 0.5 I), codes at (-1, -1).
        # The whole data set is one batch (the caption speaks of codebook updates, not of batches).
        defaults={"steps": 20, "codebook_size": 128, "num_points": 512, "points_per_step": 512, "lr": 0.1,
                  "spread": math.sqrt(0.5), "drift": 1.0, "drift_rate": 0.0},
    ),
}


# ---------------------------------------------------------------------------- settings

def resolve_settings(name: str, settings: dict) -> dict:
    """DEFAULT_SETTINGS, then the toy's own defaults, then ``settings``; checked."""
    toy = _toy(name)
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown toy setting(s) {unknown} for toy {name!r}; allowed: {sorted(DEFAULT_SETTINGS)}")
    s = {**DEFAULT_SETTINGS, **toy.defaults, **settings}
    for key in ("steps", "codebook_size", "num_points", "points_per_step", "epoch_steps", "snapshots", "seed"):
        if not isinstance(s[key], int) or isinstance(s[key], bool):
            raise TypeError(f"toy setting {key} must be an integer, got {s[key]!r}")
    for key in ("steps", "codebook_size", "num_points", "points_per_step", "epoch_steps"):
        if s[key] < 1:
            raise ValueError(f"toy setting {key} must be >= 1, got {s[key]}")
    if s["snapshots"] < 2:
        raise ValueError(f"toy setting snapshots must be >= 2 (first and last step), got {s['snapshots']}")
    if s["points_per_step"] > s["num_points"]:
        raise ValueError(f"toy setting points_per_step ({s['points_per_step']}) exceeds num_points ({s['num_points']})")
    if s["codebook_size"] > s["num_points"] and toy.init_codes is _codes_from_data:
        raise ValueError(f"toy setting codebook_size ({s['codebook_size']}) exceeds num_points ({s['num_points']}), "
                         "but the codes start on distinct data points")
    if not 0.0 <= s["drift_rate"] <= 1.0:
        raise ValueError(f"toy setting drift_rate must lie in [0, 1], got {s['drift_rate']}")
    if s["lr"] <= 0 or s["spread"] <= 0:
        raise ValueError(f"toy settings lr and spread must be > 0, got {s['lr']} and {s['spread']}")
    return s


def _toy(name: str) -> Toy:
    try:
        return TOYS[name]
    except KeyError:
        raise ValueError(f"unknown toy {name!r}; known toys: {sorted(TOYS)}") from None


# ---------------------------------------------------------------------------- running

def run_toy(name: str, settings: dict, figure_stem: Path, metrics_path: Path) -> dict:
    """Run one toy, save its figure (figure_stem.png/.pdf) and metrics JSON; return the metrics."""
    toy = _toy(name)
    s = resolve_settings(name, settings)
    torch.manual_seed(s["seed"])
    gen = torch.Generator().manual_seed(s["seed"])
    base = torch.randn(s["num_points"], 2, generator=gen) * s["spread"]
    init_codes = toy.init_codes(base, s, gen)
    batches = _batch_schedule(s, gen)
    progress = _drift_progress(s)
    snapshot_steps = sorted({round(i * s["steps"] / (s["snapshots"] - 1)) for i in range(s["snapshots"])})

    clouds = [toy.transform(p, s)(base) for p in progress]  # the full cloud at each time 0..steps
    runs = {label: _train(preset, init_codes, s, batches, progress, clouds, toy, base, snapshot_steps)
            for label, preset in toy.presets(s).items()}

    metrics = {
        "toy": name,
        "description": toy.description,
        "settings": s,
        "snapshot_steps": snapshot_steps,
        "methods": {
            label: {
                "preset": toy.presets(s)[label],
                "final_active_fraction": run["curve"][-1][1],
                "final_quant_error": run["final_error"],
                "active_fraction_curve": run["curve"],
            }
            for label, run in runs.items()
        },
    }
    _plot(name, toy, runs, clouds, snapshot_steps, figure_stem)
    write_json(metrics_path, metrics)
    return metrics


def _batch_schedule(s: dict, gen: torch.Generator) -> list[torch.Tensor]:
    """Indices of each step's batch, drawn once so that every method sees the same stream."""
    return [torch.randperm(s["num_points"], generator=gen)[: s["points_per_step"]] for _ in range(s["steps"])]


def _drift_progress(s: dict) -> list[float]:
    """Fraction of the way to the target after t online updates, t = 0..steps."""
    return [1.0 - (1.0 - s["drift_rate"]) ** t for t in range(s["steps"] + 1)]


@torch.no_grad()
def _assign(cloud: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(points of the cloud nearest to each code, mean squared distance of the cloud to its nearest code)."""
    indices, distances = nearest_code(cloud, codes, "l2")
    return torch.bincount(indices, minlength=codes.shape[0]), distances.mean().item()


def _start_from(q, codes: torch.Tensor, s: dict) -> None:
    """Put the shared initial codebook into a freshly built quantizer."""
    with torch.no_grad():
        if hasattr(q, "embed_sum"):  # EMA: running statistics as if every code had been used equally
            count = s["points_per_step"] / s["codebook_size"]
            q.cluster_size.fill_(count)
            q.embed_sum.copy_(codes * count)
            q.codebook.copy_(codes)
        elif getattr(q, "affine", None) is not None:
            q.codebook.copy_(q.affine.invert(codes))
        else:
            q.codebook.copy_(codes)
    if not torch.allclose(q.codes().detach(), codes, atol=1e-6):
        raise RuntimeError(f"could not set the initial codebook of {type(q).__name__}")


def _train(preset, init_codes, s, batches, progress, clouds, toy, base, snapshot_steps) -> dict:
    torch.manual_seed(s["seed"])  # building a quantizer draws an init we overwrite; keep the stream fixed anyway
    q = build_quantizer(preset, s["codebook_size"], 2)
    _start_from(q, init_codes, s)
    q.train()
    params = [p for p in q.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=s["lr"]) if params else None  # EMA has none

    def record(t: int) -> None:
        codes = q.codes().detach().clone()
        counts, error = _assign(clouds[t], codes)
        curve.append([t, codebook_usage(counts)])
        if t in snapshot_steps:
            snapshots[t] = (codes, counts > 0)
        errors.append(error)

    curve: list[list[float]] = []
    errors: list[float] = []
    snapshots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    record(0)
    for step, idx in enumerate(batches):
        z = toy.transform(progress[step], s)(base[idx])
        q.begin_step(step, step // s["epoch_steps"])
        out = q(z)
        loss = out.loss
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
            optimizer.step()
        q.on_step(step)
        record(step + 1)
    if not all(math.isfinite(e) for e in errors):
        raise RuntimeError(f"toy quantizer {preset} produced a non-finite codebook")
    return {"curve": curve, "final_error": errors[-1], "snapshots": snapshots}


# ---------------------------------------------------------------------------- figure

def _plot(name, toy, runs, clouds, snapshot_steps, figure_stem) -> None:
    plt = pyplot()
    rows, cols = len(runs), len(snapshot_steps) + 1
    # A fixed layout (not "constrained") and tick labels on the outer panels only: text
    # layout dominates the toy's runtime otherwise.
    fig = plt.figure(figsize=(2.4 * cols + 0.8, 2.3 * rows + 0.6))
    grid = fig.add_gridspec(rows, cols, left=0.07, right=0.93, bottom=0.1, top=0.9, wspace=0.12, hspace=0.12,
                            width_ratios=[1.0] * (cols - 1) + [1.4])
    # One set of limits for every panel, so motion is visible across columns.
    everything = torch.cat([clouds[t] for t in snapshot_steps]
                           + [run["snapshots"][t][0] for run in runs.values() for t in snapshot_steps])
    low, high = everything.min(0).values, everything.max(0).values
    pad = 0.05 * (high - low).max().item() + 1e-3
    for row, (label, run) in enumerate(runs.items()):
        for col, t in enumerate(snapshot_steps):
            ax = fig.add_subplot(grid[row, col])
            codes, used = run["snapshots"][t]
            cloud = clouds[t]
            ax.scatter(cloud[:, 0], cloud[:, 1], s=2, color="0.75", alpha=0.5, rasterized=True, label="data")
            ax.scatter(codes[used, 0], codes[used, 1], s=14, color="C0", marker="o", label="used code")
            ax.scatter(codes[~used, 0], codes[~used, 1], s=18, color="C3", marker="x", label="dead code")
            ax.set_xlim(low[0].item() - pad, high[0].item() + pad)
            ax.set_ylim(low[1].item() - pad, high[1].item() + pad)
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=6, labelleft=col == 0, labelbottom=row == rows - 1)
            if row == 0:
                ax.set_title(f"step {t}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == 0 and col == 0:
                ax.legend(fontsize=6, loc="best", markerscale=1.5)
    curve_ax = fig.add_subplot(grid[:, -1])
    curve_ax.yaxis.set_label_position("right")
    curve_ax.yaxis.tick_right()
    for label, run in runs.items():
        steps, values = zip(*run["curve"])
        # The final error in the legend: in the expansion toy every code stays in use and only it differs.
        curve_ax.plot(steps, values, label=f"{label} (final error {run['final_error']:.3f})")
    curve_ax.set_ylim(-0.02, 1.02)
    curve_ax.set_xlabel("step")
    curve_ax.set_ylabel("active-code fraction")
    curve_ax.legend(fontsize=7)
    fig.suptitle(toy.title, fontsize=10)
    save_figure(fig, figure_stem)


def check_settings(name: str, settings: dict) -> None:
    """Raise ValueError naming the setting if ``settings`` would not run (called by the config check)."""
    if name not in TOYS:
        raise ValueError(f"unknown toy {name!r}; known: {sorted(TOYS)}")
    try:
        resolve_settings(name, settings)
    except TypeError as err:
        raise ValueError(str(err)) from None
