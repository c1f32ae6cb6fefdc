"""TransVQ: a frozen codebook seen through a learned transform ("Beyond Stationarity", Sec. 3.4).

The base codebook C ~ N(0, 1/D) (K x D) is a buffer that never changes; the codes that
tokens are matched against, and decoded from, are T(C). Only T learns, so one gradient
step on T moves every code at once, whether it was chosen in the batch or not.

T follows ``CodebookTransformer`` in the public code (``vector_quantize_pytorch/sim_vq.py``
of the CelebA code, ``ldm/modules/transVQ.py`` of the ImageNet code), configured as the
paper's Sec. 4 and the repository's TransVQ configs say:

    x = in_proj(C) + pos[k]                       Linear(D, width, no bias); one learned position per code
    depth x pre-LN block:
        x = x + Attn(LN(x))                       linear attention, phi = elu + 1, q/k/v/out without bias
        x = x + FC2(GELU(FC1(LN(x))))             hidden width * mlp_ratio
    T(C) = out_proj(LN(x))                        Linear(width, D, no bias)

with width 256, 1 head, MLP ratio 2, depth 1 and the K codes forming one sequence.
``transform: mlp`` replaces the block by a per-code two-layer MLP
Linear(D, width) -> ReLU -> Linear(width, D), the faster variant of the paper's Sec. 6
(the paper gives no sizes; this mirrors the MLP example in the public SimVQ file).

Loss (SimVQ's, which TransVQ reuses): codebook_weight * ||sg(z) - z_q||^2 +
commit_weight * ||z - sg(z_q)||^2 with weights 1 and 0.25; plain straight-through
estimator (the configs set rotation_trick: false).

In training mode T(C) is recomputed on every forward. In evaluation mode with gradients
off it is computed once and reused until a parameter or buffer changes (any in-place
update, load_state_dict included, bumps a tensor's version counter) or the module is
moved, so evaluation and ``lookup`` cost one transform per model state.
``lookup(indices)`` returns T(C)[indices]; the public code's ``indices_to_codes``
applies T to the gathered frozen codes instead, which for a transformer (positions,
attention across the sequence) is a different function, so it is not copied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, straight_through
from .search import nearest_code

TRANSFORMS = ("transformer", "mlp")


@dataclass
class TransVQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (SimVQ's input_to_quantize weight 0.25).
    commit_weight: float = 0.25
    # Codebook side: codebook_weight * ||sg(z) - z_q||^2; reaches only T's parameters.
    codebook_weight: float = 1.0
    # "transformer" (the paper's T) or "mlp" (the two-layer MLP of its Sec. 6).
    transform: str = "transformer"
    width: int = 256
    depth: int = 1
    heads: int = 1
    mlp_ratio: float = 2.0


class LinearAttention(nn.Module):
    """Linear attention with feature map elu(x) + 1 over a (B, L, width) sequence (no causal mask)."""

    def __init__(self, width: int, heads: int, eps: float = 1e-6):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.to_q = nn.Linear(width, width, bias=False)
        self.to_k = nn.Linear(width, width, bias=False)
        self.to_v = nn.Linear(width, width, bias=False)
        self.to_out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        split = lambda t: t.view(b, length, self.heads, width // self.heads).transpose(1, 2)
        q = F.elu(split(self.to_q(x))) + 1.0
        k = F.elu(split(self.to_k(x))) + 1.0
        v = split(self.to_v(x))
        kv = k.transpose(-2, -1) @ v                                    # (B, H, dh, dh)
        normaliser = (q * k.sum(dim=2, keepdim=True)).sum(-1, keepdim=True)  # (B, H, L, 1)
        out = (q @ kv) / (normaliser + self.eps)
        return self.to_out(out.transpose(1, 2).reshape(b, length, width))


class Block(nn.Module):
    """Pre-LN transformer block with linear attention."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = LinearAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CodebookTransformer(nn.Module):
    """T: (K, D) -> (K, D), the K codes as one token sequence with learned positions."""

    def __init__(self, codebook_size: int, code_dim: int, width: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.in_proj = nn.Linear(code_dim, width, bias=False)
        self.positions = nn.Embedding(codebook_size, width)  # N(0, 1), as the code
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out_proj = nn.Linear(width, code_dim, bias=False)

    def forward(self, frozen: torch.Tensor) -> torch.Tensor:
        x = (self.in_proj(frozen) + self.positions.weight).unsqueeze(0)
        for block in self.blocks:
            x = block(x)
        return self.out_proj(self.norm(x)).squeeze(0)


class CodebookMLP(nn.Sequential):
    """T: each code through Linear(D, width) -> ReLU -> Linear(width, D)."""

    def __init__(self, code_dim: int, width: int):
        super().__init__(nn.Linear(code_dim, width), nn.ReLU(), nn.Linear(width, code_dim))


class TransVQ(Quantizer):
    Settings = TransVQSettings
    paper = "TransVQ (Beyond Stationarity: Rethinking Codebook Collapse in Vector Quantization, Sec. 3.4)"

    def __init__(self, codebook_size: int, code_dim: int, settings: TransVQSettings):
        super().__init__(codebook_size, code_dim, settings)
        s = settings
        if s.transform not in TRANSFORMS:
            raise ValueError(f"TransVQ transform must be one of {list(TRANSFORMS)}, got {s.transform!r}")
        if s.width < 1 or s.depth < 1 or s.heads < 1 or s.width % s.heads or s.mlp_ratio <= 0:
            raise ValueError(
                f"TransVQ needs width, depth, heads >= 1 with heads dividing width and mlp_ratio > 0, "
                f"got width={s.width}, depth={s.depth}, heads={s.heads}, mlp_ratio={s.mlp_ratio}"
            )
        # Frozen base codebook, N(0, 1/D) as SimVQ's and TransVQ's code; saved in the state dict.
        self.register_buffer("frozen_codebook", torch.randn(codebook_size, code_dim) * code_dim**-0.5)
        if s.transform == "transformer":
            self.transform = CodebookTransformer(codebook_size, code_dim, s.width, s.depth, s.heads, s.mlp_ratio)
        else:
            self.transform = CodebookMLP(code_dim, s.width)
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def _state_key(self) -> tuple:
        tensors = [*self.parameters(), *self.buffers()]
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)

    def codes(self) -> torch.Tensor:
        """T(C): recomputed with gradient in training or with grad enabled; cached otherwise."""
        if self.training or torch.is_grad_enabled():
            self._cache = None
            return self.transform(self.frozen_codebook)
        key = self._state_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.transform(self.frozen_codebook))
        return self._cache[1]

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half(): the cache would be stale
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        codes = self.codes()
        indices, _ = nearest_code(z.detach(), codes.detach(), "l2")
        z_q = F.embedding(indices, codes)
        return QuantizerOutput(straight_through(z, z_q), indices, self.vq_losses(z, z_q))
