"""The contract every quantizer follows.

``forward(z)`` takes tokens of shape (..., D) and returns a ``QuantizerOutput``:
``z_q`` (same shape, carrying the method's gradient path), ``indices`` (shape
(...)), ``losses`` (named scalar tensors that the training loop adds up) and
``stats`` (plain floats for logging). Methods that need the loop declare it by
overriding ``on_step``.
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

    def on_step(self, step: int) -> None:
        """Called by the training loop after each optimiser step."""

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


def _has_type(value, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "bool"
    checks = {"float": (int, float), "int": (int,), "str": (str,)}
    return isinstance(value, checks.get(type_name, (object,)))


def straight_through(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward value z_q, gradient to z as if quantization were the identity."""
    return z + (z_q - z).detach()
