"""The contract every quantizer follows.

A quantizer is built from K, D and its settings: ``EMAQuantizer(512, 64)`` takes the
paper defaults, ``EMAQuantizer(codebook_size=512, code_dim=64, decay=0.95)`` overrides
some by keyword, and ``EMAQuantizer(512, 64, EMASettings(...))`` passes the dataclass
(what params.yaml presets become).

``forward(z)`` takes tokens of shape (..., D), or a feature map with the code dimension
elsewhere (``forward(fmap, dim=1)`` for (B, D, H, W)), and returns a ``QuantizerOutput``:
``z_q`` (same shape and layout, carrying the method's gradient path), ``indices`` (the
shape without the code dimension), ``losses`` (named scalar tensors), ``loss`` (their sum,
what a training loop adds to its own) and ``stats`` (plain floats for logging).

What a method may ask of the training loop (vqrepro/train.py):
- ``begin_step(step, epoch)`` is called before every training forward, so schedules
  (temperatures, decays) are pure functions of the step and survive a resume;
- ``on_step(step)`` is called after every optimiser step;
- ``inner_steps > 0`` asks for alternating optimisation: before each task step the
  loop takes that many steps of a separate optimiser over ``codebook_parameters()``
  on ``alternating_loss(z)`` of detached encoder outputs (the task step that
  follows updates every parameter, as vqtorch's in-place optimiser does);
- ``outer_steps > 1`` asks the loop to split each mini-batch evenly into that many
  sub-batches and take one task step (forward, backward, optimiser step) on each,
  the "outer" loop of the paper's Table 10 / Appendix A.11, so every setting sees
  the same number of examples; 1 (the default) is one task step per batch.
A loop of your own calls ``advance()`` once after each optimiser step: it runs both
hooks (``on_step`` now, ``begin_step`` for the next step), so step-scheduled methods see
their schedule; pass ``epoch=`` where a method counts epochs (NS-VQ's kernel bandwidth,
repeated k-means). Methods with ``inner_steps`` or ``outer_steps`` need vqrepro's loop.
State that must survive a checkpoint lives in buffers or parameters, never in
plain attributes.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import codebook_usage, perplexity


@dataclass
class QuantizerOutput:
    z_q: torch.Tensor
    indices: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def loss(self) -> torch.Tensor:
        """The quantizer's total loss: the sum of its named terms (zero when it has none)."""
        return sum(self.losses.values(), torch.zeros((), device=self.z_q.device))


def usage_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of codes used and perplexity of one batch's assignments (perplexity in float32, as logged)."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size)
    return {"batch_usage": codebook_usage(counts), "batch_perplexity": perplexity(counts, torch.float32)}


class Quantizer(nn.Module):
    """Base class: holds K and D, flattens tokens, and defines the hooks."""

    #: dataclass of the method's settings; field defaults are the paper defaults
    Settings: type = None  # type: ignore[assignment]
    #: where the method comes from, shown by ``vqrepro quantizers``
    paper: str = ""

    def __init_subclass__(cls, **kwargs):
        # Every method's own __init__(K, D, settings) also accepts keyword settings.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        own = set(inspect.signature(init).parameters) - {"self", "codebook_size", "code_dim", "settings"}

        @functools.wraps(init)
        def __init__(self, codebook_size: int, code_dim: int, settings=None, **overrides):
            extra = {name: overrides.pop(name) for name in own & set(overrides)}  # e.g. NS-VQ's max_elements
            init(self, codebook_size, code_dim, type(self).resolve_settings(settings, overrides), **extra)

        cls.__init__ = __init__

    def __init__(self, codebook_size: int, code_dim: int, settings=None, **overrides):
        settings = type(self).resolve_settings(settings, overrides)
        super().__init__()
        if codebook_size < 1 or code_dim < 1:
            raise ValueError(
                f"codebook size and code dimension must be positive, got K={codebook_size}, D={code_dim}"
            )
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.settings = settings
        self.step = 0
        self.epoch = 0

    def forward(self, z: torch.Tensor, dim: int = -1) -> QuantizerOutput:
        """Quantize ``z`` whose axis ``dim`` holds the D code components (-1: channels last)."""
        tokens = z.movedim(dim, -1)
        if tokens.shape[-1] != self.code_dim:
            raise ValueError(f"expected {self.code_dim} code components on axis {dim}, got shape {tuple(z.shape)}; "
                             "a channels-first feature map (B, D, H, W) needs dim=1")
        out = self.quantize(tokens.reshape(-1, self.code_dim))
        out.z_q = out.z_q.reshape(tokens.shape).movedim(-1, dim)
        out.indices = out.indices.reshape(tokens.shape[:-1])
        out.stats.update(usage_stats(out.indices, self.codebook_size))
        return out

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize flat tokens (N, D). Implemented by each method."""
        raise NotImplementedError

    def codes(self) -> torch.Tensor:
        """The (K, D) code vectors that tokens are matched against and decoded from."""
        raise NotImplementedError

    def commitment_loss(self, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        """commit_weight * ||z - sg(z_q)||^2 (mean): pulls the encoder output towards its code."""
        return self.settings.commit_weight * F.mse_loss(z, z_q.detach())

    def codebook_loss(self, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        """codebook_weight * ||sg(z) - z_q||^2 (mean): pulls the code towards the encoder output."""
        return self.settings.codebook_weight * F.mse_loss(z.detach(), z_q)

    def vq_losses(self, z: torch.Tensor, z_q: torch.Tensor) -> dict[str, torch.Tensor]:
        """VQ-VAE's two named terms, ``commit`` then ``codebook``, with the settings' weights.

        For methods whose Settings have ``commit_weight`` and ``codebook_weight``; the
        training loop sums ``losses`` in this order.
        """
        return {"commit": self.commitment_loss(z, z_q), "codebook": self.codebook_loss(z, z_q)}

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode indices of any shape to code vectors (..., D)."""
        return self.codes()[indices]

    def begin_step(self, step: int, epoch: int) -> None:
        """Called by the training loop before each training forward (0-based step and epoch)."""
        self.step, self.epoch = step, epoch

    def on_step(self, step: int) -> None:
        """Called by the training loop after each optimiser step."""

    def advance(self, epoch: int | None = None) -> None:
        """For a loop of your own: call once after each optimiser step (both hooks, in order)."""
        self.on_step(self.step)
        self.begin_step(self.step + 1, self.epoch if epoch is None else epoch)

    @property
    def inner_steps(self) -> int:
        """Codebook steps per task step (alternating optimisation); 0 trains everything jointly."""
        return 0

    @property
    def outer_steps(self) -> int:
        """Task steps per mini-batch, each on an even sub-batch (Table 10's outer loop); 1 = one step."""
        return 1

    def codebook_parameters(self) -> list[nn.Parameter]:
        """Parameters that alternating optimisation updates in its inner steps."""
        return []

    def alternating_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Inner-step objective on detached tokens (N, D); only methods with inner_steps > 0 need it."""
        raise NotImplementedError(f"{type(self).__name__} does not support alternating optimisation")

    @classmethod
    def resolve_settings(cls, settings, overrides: dict):
        """The Settings to build with: the given dataclass, or the defaults with keyword overrides."""
        if settings is None:
            return cls.settings_from(overrides)
        if overrides:
            raise TypeError(f"{cls.__name__}: give a settings object or keyword settings {sorted(overrides)}, not both")
        return settings

    @classmethod
    def settings_from(cls, values: dict):
        """Build the Settings dataclass; an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls.Settings)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(
                f"unknown setting(s) {unknown} for quantizer method {cls.__name__}; known: {sorted(known)}"
            )
        for f in dataclasses.fields(cls.Settings):
            if f.name in values and not _has_type(values[f.name], str(f.type)):
                raise TypeError(f"setting {f.name!r} of {cls.__name__} must be {f.type}, got {values[f.name]!r}")
        return cls.Settings(**values)


def check_choices(settings, **choices: tuple[str, ...]) -> None:
    """Raise a ValueError naming the first setting whose value is not one of its choices."""
    for name, allowed in choices.items():
        value = getattr(settings, name)
        if value not in allowed:
            raise ValueError(f"quantizer setting {name}: {value!r} is not one of {list(allowed)}")


def check_count(name: str, value, lowest: int, highest: int, off: int | None = None, why: str = "") -> None:
    """Raise an error naming the setting unless ``value`` is an integer in lowest..highest, or ``off`` (the
    value that turns the feature off): a TypeError for a float, bool or text, a ValueError for an integer out
    of range, both saying what is allowed. ``why``: where the bounds come from, for the message."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    if integer and (value == off or lowest <= value <= highest):
        return
    allowed = f"{off} (off) or {lowest}..{highest}" if off is not None else f"an integer {lowest}..{highest}"
    error = ValueError if integer else TypeError
    raise error(f"quantizer setting {name}: {value!r} is not {allowed}" + (f" ({why})" if why else ""))


def _has_type(value, type_name: str) -> bool:
    if "|" in type_name:  # e.g. "list[int] | None"
        return any(_has_type(value, option.strip()) for option in type_name.split("|"))
    if type_name == "None":
        return value is None
    if isinstance(value, bool):
        return type_name == "bool"
    if type_name.startswith("list"):
        return isinstance(value, list)
    checks = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}
    return isinstance(value, checks.get(type_name, (object,)))


def straight_through(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward value z_q, gradient to z as if quantization were the identity."""
    return z + (z_q - z).detach()
