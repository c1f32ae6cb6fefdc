"""LFQ: lookup-free quantization (Yu et al., 2023, MAGVIT-v2).

The token is projected to b = log2(K) channels (a linear layer, only when D != b); each
channel is quantized to its sign, q = sign(x) in {-1, +1}^b, with a straight-through
gradient, and projected back. The index is the binary code of q with the first channel
the most significant bit (bit = 1 for +1), as vector-quantize-pytorch.

Losses (MAGVIT-v2 Eq. 5; weights and temperature of vector-quantize-pytorch):
- ``entropy`` = entropy_loss_weight * (E_n[H(p_n)] - diversity_gamma * H(E_n[p_n])), with
  p_n(k) = softmax_k(2 T x_n . c_k) over the K codes c_k in {-1, +1}^b (the softmax of
  -T ||x_n - c_k||^2, up to a constant, T = entropy_inv_temperature). The per-sample term
  pushes each token towards a confident code, the batch term towards using all codes.
- ``commit`` = commit_weight * ||x - sg(q)||^2 (mean over channels and tokens).

Memory: p_n factorises over bits (p_n = prod_i Bernoulli(sigmoid(4 T x_i))), so the
per-sample entropy is the sum of b binary entropies and costs O(N b). The batch
distribution E_n[p_n] does not factorise and needs all K probabilities of every token:
it is accumulated over chunks of tokens, at most 2^22 probabilities at a time, each
chunk under activation checkpointing, so the (N, K) matrix never exists in full, in the
forward or the backward pass (its cost is O(N K) time, fine for K up to ~2^16).
The entropy term is computed in training mode only (as vector-quantize-pytorch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import Quantizer, QuantizerOutput, straight_through
from .search import DEFAULT_MAX_ELEMENTS


def num_bits(codebook_size: int) -> int:
    if codebook_size < 2 or codebook_size & (codebook_size - 1):
        raise ValueError(f"lfq needs a codebook size K that is a power of 2 (K = 2^bits, bits >= 1), got K = {codebook_size}")
    return codebook_size.bit_length() - 1


@dataclass
class LFQSettings:
    entropy_loss_weight: float = 0.1
    diversity_gamma: float = 1.0
    commit_weight: float = 0.25
    # inverse temperature T of the code distribution in the entropy loss (vector-quantize-pytorch: 100)
    entropy_inv_temperature: float = 100.0


class LFQQuantizer(Quantizer):
    Settings = LFQSettings
    paper = "LFQ (Yu et al., 2023, MAGVIT-v2), lookup-free quantization"

    def __init__(self, codebook_size: int, code_dim: int, settings: LFQSettings):
        super().__init__(codebook_size, code_dim, settings)
        bits = num_bits(codebook_size)
        s = settings
        if s.entropy_loss_weight < 0 or s.commit_weight < 0 or s.entropy_inv_temperature <= 0:
            raise ValueError(
                "lfq: entropy_loss_weight and commit_weight must be non-negative and entropy_inv_temperature positive, "
                f"got {s.entropy_loss_weight}, {s.commit_weight}, {s.entropy_inv_temperature}"
            )
        self.bits = bits
        self.register_buffer("_mask", 2 ** torch.arange(bits - 1, -1, -1), persistent=False)
        projected = code_dim != bits
        self.project_in = nn.Linear(code_dim, bits) if projected else nn.Identity()
        self.project_out = nn.Linear(bits, code_dim) if projected else nn.Identity()

    # ------------------------------------------------------------------ bits <-> indices

    def bits_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        return ((q > 0).long() * self._mask).sum(-1)

    def indices_to_bits(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (...) -> codes (..., bits) in {-1, +1}."""
        on = (indices.long().unsqueeze(-1) & self._mask) != 0
        return on.float() * 2.0 - 1.0

    def codes(self) -> torch.Tensor:
        return self.lookup(torch.arange(self.codebook_size, device=self._mask.device))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.indices_to_bits(indices))

    # ------------------------------------------------------------------ quantization

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        x = self.project_in(z)
        q = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
        indices = self.bits_to_indices(q)
        losses = {"commit": self.commitment_loss(x, q)}
        stats = {}
        if self.training:
            per_sample, batch = self.entropies(x)
            s = self.settings
            losses["entropy"] = s.entropy_loss_weight * (per_sample - s.diversity_gamma * batch)
            stats = {"per_sample_entropy": per_sample.item(), "codebook_entropy": batch.item()}
        return QuantizerOutput(self.project_out(straight_through(x, q)), indices, losses, stats)

    def entropies(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean per-sample entropy, entropy of the mean distribution) of projected tokens x (N, bits), in nats."""
        t = self.settings.entropy_inv_temperature
        # p(bit_i = +1) = sigmoid(4 T x_i); H = softplus(a) - a sigmoid(a) with a = 4 T x_i (symmetric in a).
        a = 4.0 * t * x
        per_sample = (F.softplus(a) - a * torch.sigmoid(a)).sum(-1).mean()
        avg = self.mean_code_distribution(x)
        batch = -(avg * avg.clamp_min(1e-30).log()).sum()
        return per_sample, batch

    def mean_code_distribution(self, x: torch.Tensor) -> torch.Tensor:
        """E_n[p_n] over all K codes, (K,), in bounded chunks of tokens."""
        n, k = x.shape[0], self.codebook_size
        all_codes = self.indices_to_bits(torch.arange(k, device=x.device)).to(x.dtype)  # (K, bits)
        chunk = max(1, DEFAULT_MAX_ELEMENTS // k)
        total = x.new_zeros(k)
        scale = 2.0 * self.settings.entropy_inv_temperature
        use_checkpoint = torch.is_grad_enabled() and x.requires_grad and n > chunk
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            if use_checkpoint:
                total = total + checkpoint(_chunk_prob_sum, part, all_codes, scale, use_reentrant=False)
            else:
                total = total + _chunk_prob_sum(part, all_codes, scale)
        return total / max(n, 1)


def _chunk_prob_sum(x: torch.Tensor, all_codes: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.softmax(scale * (x @ all_codes.t()), dim=1).sum(0)
