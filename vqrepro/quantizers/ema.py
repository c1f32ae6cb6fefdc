"""EMA codebook (van den Oord et al., 2017, appendix; "VQGAN-EMA" in the NS-VQ tables).

Each code is an exponential moving average of the encoder outputs assigned to it,
with Laplace-smoothed counts so that an unused code never divides by zero. The
codebook gets no gradient; only the commitment loss reaches the encoder.

The EMA state starts consistent, as in vector-quantize-pytorch: every count at 1 and
every sum at its code (each code the mean of one pseudo-token equal to itself), so a
code that no token picks in the first batches stays where it was. Counts starting at
0 beside sums at the codes (taming-transformers' EmbeddingEMA; ``initial_count: 0``)
divide an unused code by the smoothing epsilon on the first update, sending it ~1e5
times farther out, where no token reaches it for about a thousand steps: most of the
codebook dies in the first step, an artefact of the initial state rather than of EMA.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Quantizer, QuantizerOutput, straight_through
from .search import DEFAULT_MAX_ELEMENTS, nearest_code


@dataclass
class EMASettings:
    commit_weight: float = 0.25
    decay: float = 0.99
    epsilon: float = 1e-5
    # Starting EMA count of every code (sums start at the codes): 1 = vector-quantize-pytorch;
    # 0 = taming-transformers, which kills codes unused in the first batch (module docstring).
    initial_count: float = 1.0

    def __post_init__(self):
        """Checked when a preset is read (vqrepro.config checks every preset, even one no study uses yet)."""
        if self.commit_weight < 0:
            raise ValueError(f"quantizer setting commit_weight must be >= 0, got {self.commit_weight}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {self.decay}")
        if not self.epsilon > 0:  # the Laplace smoothing that keeps an unused code's count above zero
            raise ValueError(f"quantizer setting epsilon must be > 0, got {self.epsilon}")
        if self.initial_count < 0:
            raise ValueError(f"quantizer setting initial_count must be >= 0, got {self.initial_count}")


class EMAQuantizer(Quantizer):
    Settings = EMASettings
    paper = "VQ-VAE EMA update (van den Oord et al., 2017); VQGAN-EMA in NS-VQ Tables 2-4"

    def __init__(self, codebook_size: int, code_dim: int, settings: EMASettings):
        super().__init__(codebook_size, code_dim, settings)  # settings checked when made (EMASettings.__post_init__)
        codebook = torch.randn(codebook_size, code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.full((codebook_size,), float(settings.initial_count)))
        self.register_buffer("embed_sum", codebook.clone())

    def codes(self) -> torch.Tensor:
        return self.codebook

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        indices, _ = nearest_code(z.detach(), self.codebook, "l2")
        # The codes before this batch's update, as in Sonnet, taming-transformers and
        # vector-quantize-pytorch (advanced indexing copies, so the update cannot reach z_q).
        z_q = self.codebook[indices]
        if self.training:
            self._ema_update(z.detach(), indices)
        # The codes follow their EMA, not a gradient: no codebook term.
        return QuantizerOutput(straight_through(z, z_q), indices, {"commit": self.commitment_loss(z, z_q)})

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        decay, eps, k = self.settings.decay, self.settings.epsilon, self.codebook_size
        counts = torch.bincount(indices, minlength=k).to(z.dtype)
        sums = assigned_sums(z, indices, k)
        self.cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (total + k * eps) * total
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))


def assigned_sums(z: torch.Tensor, indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Sum of the tokens assigned to each code, (K, D).

    A one-hot matrix product in bounded chunks rather than ``index_add_``: on CUDA
    with deterministic kernels, index_add_ is about 5x slower (docs/benchmarks.md).
    """
    sums = z.new_zeros(codebook_size, z.shape[1])
    chunk = max(1, DEFAULT_MAX_ELEMENTS // codebook_size)
    for start in range(0, z.shape[0], chunk):
        part = indices[start : start + chunk]
        onehot = torch.zeros(part.shape[0], codebook_size, dtype=z.dtype, device=z.device)
        onehot.scatter_(1, part[:, None], 1.0)
        sums += onehot.t() @ z[start : start + chunk]
    return sums
