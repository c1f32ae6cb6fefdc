"""NS-VQ: non-stationary vector quantization ("Beyond Stationarity", Sec. 3.3).

Two changes to plain VQ-VAE, both from the paper and its CelebA code
(``NS_Trans_VQ_CelebA/models/vq_vae.py``, ``VectorQuantizer`` with
``mem_flag=True, q_flag=True``):

1. Kernel embedding loss (Eq. 17). In training mode the codebook loss reaches every
   code, not only the assigned one::

       w_nk = clamp(lambda * K * softmax_k(-d_nk / tau) * (1 - onehot_nk) + onehot_nk, 0, 1)
       codebook = codebook_weight * sum_n sum_k w_nk ||sg(z_n) - c_k||^2 / (N * D)

   with d_nk = ||z_n - c_k||^2 (summed over D), the weights w detached, and
   onehot the assigned (nearest) code. The sum runs over codes and the mean over
   tokens and dimensions, so with lambda = 0 (or tau -> 0) it is exactly plain VQ's
   mean-squared codebook loss. tau (the kernel bandwidth 2 sigma^2) decays per epoch:
   tau = tau_start * tau_decay ** epoch.

2. Modified straight-through estimator (Eq. 18, supplement Eq. A21)::

       z_q' = z + a * z_q + sg((1 - a) * z_q - z),   a = 2 * codebook_weight / (N * D)

   Forward value z_q; the encoder gets the upstream gradient unchanged, the codebook
   a times the upstream gradient (the "delay-free" correction: the gradient of the
   mean-squared codebook loss towards the updated encoder output). In the code the
   same variable (``alpha``) is the embedding-loss weight and the STE's alpha, so
   ``codebook_weight`` sets both.

The weighted loss is computed without an N x K tensor in the autograd graph: with
s_k = sum_n w_nk and m_k = sum_n w_nk z_n (both detached), its gradient with
respect to c_k is 2 (s_k c_k - m_k) / (N D). Distances and weights are formed in
chunks of at most ``max_elements`` entries, as in the shared nearest-code search.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, straight_through
from .search import DEFAULT_MAX_ELEMENTS, nearest_code

#: the CelebA code floors every decayed hyperparameter at 1e-8 (``get_decay_p``)
TAU_FLOOR = 1e-8


@dataclass
class NSVQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (beta = 0.25 in the code).
    commit_weight: float = 0.25
    # Codebook side (the code's alpha = 1): weights the kernel embedding loss and sets
    # the modified STE's a = 2 * codebook_weight / (N * D).
    codebook_weight: float = 1.0
    # lambda: how much of the kernel mass reaches non-assigned codes (0.01 in the code).
    kernel_weight: float = 0.01
    # tau at epoch e is tau_start * tau_decay ** e. The release's CelebA code, which made the
    # published tables: start 1, decay 0.5 per epoch (the default); the paper's text: 0.9.
    tau_start: float = 1.0
    tau_decay: float = 0.5
    # z + a z_q + sg((1 - a) z_q - z) instead of z + sg(z_q - z).
    modified_ste: bool = True


class NSVQuantizer(Quantizer):
    Settings = NSVQSettings
    paper = "NS-VQ (Beyond Stationarity: Rethinking Codebook Collapse in Vector Quantization, Sec. 3.3)"

    def __init__(self, codebook_size: int, code_dim: int, settings: NSVQSettings,
                 max_elements: int = DEFAULT_MAX_ELEMENTS):
        super().__init__(codebook_size, code_dim, settings)
        if settings.kernel_weight < 0:
            raise ValueError(f"NS-VQ kernel_weight (lambda) must be >= 0, got {settings.kernel_weight}")
        if settings.tau_start <= 0 or not 0 < settings.tau_decay <= 1:
            raise ValueError(
                f"NS-VQ needs tau_start > 0 and tau_decay in (0, 1], got {settings.tau_start}, {settings.tau_decay}"
            )
        self.max_elements = max_elements
        # Uniform(-1/K, 1/K), as the NS-VQ CelebA code (nn.Embedding re-initialised).
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, code_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        )

    def codes(self) -> torch.Tensor:
        return self.codebook

    def tau(self, epoch: int | None = None) -> float:
        """Kernel bandwidth at an epoch (0-based; the current one by default)."""
        epoch = self.epoch if epoch is None else epoch
        return max(self.settings.tau_start * self.settings.tau_decay**epoch, TAU_FLOOR)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        s = self.settings
        indices, _ = nearest_code(z.detach(), self.codebook.detach(), "l2", self.max_elements)
        z_q = F.embedding(indices, self.codebook)
        stats = {}
        if self.training:
            tau = self.tau()
            kernel_loss = kernel_embedding_loss(z.detach(), self.codebook, indices, s.kernel_weight, tau,
                                                self.max_elements)
            losses = {"commit": self.commitment_loss(z, z_q), "codebook": s.codebook_weight * kernel_loss}
            stats["tau"] = tau
        else:  # evaluation: the plain embedding loss, as the code outside training
            losses = self.vq_losses(z, z_q)
        if s.modified_ste:
            z_q = scaled_straight_through(z, z_q, 2.0 * s.codebook_weight / z.numel())
        else:
            z_q = straight_through(z, z_q)
        return QuantizerOutput(z_q, indices, losses, stats)


def scaled_straight_through(z: torch.Tensor, z_q: torch.Tensor, a: float) -> torch.Tensor:
    """NS-VQ's STE: forward value z_q, gradient upstream to z and a * upstream to z_q."""
    return z + a * z_q + ((1.0 - a) * z_q - z).detach()


@torch.no_grad()
def kernel_weight_statistics(
    z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor, kernel_weight: float, tau: float,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-code sums of the NS-VQ weights in bounded chunks.

    Returns (s, m, total): s_k = sum_n w_nk (K,), m_k = sum_n w_nk z_n (K, D) and
    total = sum_nk w_nk ||z_n - c_k||^2 (a scalar).
    """
    n, k = z.shape[0], codebook.shape[0]
    chunk = max(1, max_elements // max(k, 1))
    codebook_t = codebook.t()
    code_sq = codebook.pow(2).sum(1)
    weight_sum = z.new_zeros(k)
    weighted_tokens = z.new_zeros(k, z.shape[1])
    total = z.new_zeros(())
    for start in range(0, n, chunk):
        part = z[start : start + chunk]
        # ||c||^2 - 2 z.c: the softmax is shift-invariant per row, so ||z||^2 is left out of it.
        partial = torch.addmm(code_sq, part, codebook_t, alpha=-2.0)
        weights = torch.softmax(-partial / tau, dim=1).mul_(kernel_weight * k)
        weights.scatter_(1, indices[start : start + chunk, None], 1.0).clamp_(0.0, 1.0)
        distances = (partial + part.pow(2).sum(1, keepdim=True)).clamp_min_(0.0)
        weight_sum += weights.sum(0)
        weighted_tokens += weights.t() @ part
        total += (weights * distances).sum()
    return weight_sum, weighted_tokens, total


def kernel_embedding_loss(
    z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor, kernel_weight: float, tau: float,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """sum_n sum_k w_nk ||sg(z_n) - c_k||^2 / (N D), differentiable in the codebook only.

    The value is the chunked sum; the gradient comes from the equivalent closed form
    sum_k (s_k ||c_k||^2 - 2 c_k . m_k) / (N D), which keeps no N x K tensor for backward.
    """
    z = z.detach()
    scale = 1.0 / z.numel()
    weight_sum, weighted_tokens, total = kernel_weight_statistics(z, codebook.detach(), indices, kernel_weight, tau,
                                                                  max_elements)
    surrogate = ((weight_sum * codebook.pow(2).sum(1)).sum() - 2.0 * (codebook * weighted_tokens).sum()) * scale
    return total * scale + (surrogate - surrogate.detach())
