"""The contract every quantizer follows.

``forward(z)`` takes tokens of shape (..., D) and returns a ``QuantizerOutput``:
``z_q`` (same shape, carrying the method's gradient path), ``indices`` (shape
(...)), ``losses`` (named scalar tensors that the training loop adds up) and
``stats`` (plain floats for logging).

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
State that must survive a checkpoint lives in buffers or parameters, never in
plain attributes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    z_q: torch.Tensor
    indices: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def usage_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of codes used and perplexity of one batch's assignments."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {
        "batch_usage": (counts > 0).float().mean().item(),
        "batch_perplexity": entropy.exp().item(),
    }


class Quantizer(nn.Module):
    """Base class: holds K and D, flattens tokens, and defines the hooks."""

    #: dataclass of the method's settings; field defaults are the paper defaults
    Settings: type = None  # type: ignore[assignment]
    #: where the method comes from, shown by ``vqrepro quantizers``
    paper: str = ""

    def __init__(self, codebook_size: int, code_dim: int, settings):
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

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.code_dim:
            raise ValueError(f"expected tokens with last dimension {self.code_dim}, got {tuple(z.shape)}")
        flat = z.reshape(-1, self.code_dim)
        out = self.quantize(flat)
        out.z_q = out.z_q.reshape(z.shape)
        out.indices = out.indices.reshape(z.shape[:-1])
        out.stats.update(usage_stats(out.indices, self.codebook_size))
        return out

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize flat tokens (N, D). Implemented by each method."""
        raise NotImplementedError

    def codes(self) -> torch.Tensor:
        """The (K, D) code vectors that tokens are matched against and decoded from."""
        raise NotImplementedError

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode indices of any shape to code vectors (..., D)."""
        return self.codes()[indices]

    def begin_step(self, step: int, epoch: int) -> None:
        """Called by the training loop before each training forward (0-based step and epoch)."""
        self.step, self.epoch = step, epoch

    def on_step(self, step: int) -> None:
        """Called by the training loop after each optimiser step."""

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


def _has_type(value, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "bool"
    if type_name.startswith("list"):
        return isinstance(value, list)
    checks = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}
    return isinstance(value, checks.get(type_name, (object,)))


def straight_through(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward value z_q, gradient to z as if quantization were the identity."""
    return z + (z_q - z).detach()
