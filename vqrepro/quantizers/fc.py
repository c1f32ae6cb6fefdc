"""VQGAN-FC: factorised, l2-normalised codes (Yu et al., "Vector-quantized Image Modeling with
Improved VQGAN", ICLR 2022, Sec. 3.2); the "VQGAN-FC" baseline of the NS-VQ tables.

    u   = normalise(P_in z)                   P_in: Linear(D, d), the lookup projection
    e_k = normalise(E_k)                      E: (K, d) codebook, initialised N(0, 1)
    k*  = argmax_k u . e_k                    = argmin_k ||u - e_k||^2 on the unit sphere
    u_q = u + sg(e_k* - u)                    straight-through in the lookup space
    z_q = P_out u_q                           P_out: Linear(d, D), back to the decoder's width

Losses, both in the lookup space on unit vectors (VQ loss of Yu et al. with beta = 0.25):
``commit`` = commit_weight ||u - sg(e_k*)||^2 (reaches the encoder through P_in) and
``codebook`` = codebook_weight ||sg(u) - e_k*||^2 (reaches E only).

``d = lookup_dim`` (0 = the code dimension D). What the NS-VQ tables call the code
dimension of VQGAN-FC is the dimension the codes live in and the lookup happens in
(their Fig. 3 finding: "reducing the codebook dimension improves reconstruction" for
VQGAN-FC), and their VQ-VAE ties the encoder's output width to that same dimension for
every method. So with the default ``lookup_dim: 0`` a grid's code_dim is both the
encoder width and the lookup dimension, as for every other method in the grid; a preset
with ``lookup_dim: d`` < code_dim gives Yu et al.'s factorisation of a wider encoder
output (for example 768 -> 32 in their paper).

``project: true`` (default) keeps P_in and P_out even when d = D, as in Yu et al.'s
design where the lookup space is always a learned projection. ``project: false``
drops them (needs d = D): tokens and codes are normalised in the encoder's own space
and the decoder receives the unit code itself, which is what vector-quantize-pytorch's
``VectorQuantize(codebook_dim=dim, use_cosine_sim=True)`` does (its projections are
identities when codebook_dim equals dim), except that it updates the codes by EMA.

``codes()`` and ``lookup(indices)`` give P_out(e_k), the vectors the decoder receives,
so decoding from indices equals the forward pass; ``lookup_codes()`` gives the unit
codes e_k that tokens are matched against and ``lookup_tokens(z)`` the unit vectors u.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, straight_through
from .search import nearest_code


@dataclass
class VQGANFCSettings:
    # Encoder side, in the lookup space: commit_weight * ||u - sg(e)||^2.
    commit_weight: float = 0.25
    # Codebook side, in the lookup space: codebook_weight * ||sg(u) - e||^2.
    codebook_weight: float = 1.0
    # Dimension of the lookup space; 0 = the code dimension D.
    lookup_dim: int = 0
    # Linear projections in and out of the lookup space even when lookup_dim = D.
    project: bool = True


class VQGANFCQuantizer(Quantizer):
    Settings = VQGANFCSettings
    paper = ("VQGAN-FC: factorised l2-normalised codes (Yu et al., ICLR 2022, Sec. 3.2); "
             "baseline in NS-VQ Tables 2-4")

    def __init__(self, codebook_size: int, code_dim: int, settings: VQGANFCSettings):
        super().__init__(codebook_size, code_dim, settings)
        if settings.lookup_dim < 0:
            raise ValueError(f"VQGAN-FC lookup_dim must be >= 0 (0 = code_dim), got {settings.lookup_dim}")
        self.lookup_dim = settings.lookup_dim or code_dim
        if not settings.project and self.lookup_dim != code_dim:
            raise ValueError(
                f"VQGAN-FC with project: false needs lookup_dim = code_dim ({code_dim}) or 0, "
                f"got {settings.lookup_dim}"
            )
        if settings.project:
            self.project_in = nn.Linear(code_dim, self.lookup_dim)
            self.project_out = nn.Linear(self.lookup_dim, code_dim)
        else:
            self.project_in = self.project_out = nn.Identity()
        # "The codebook variables are initialized from a normal distribution" (Yu et al.).
        self.codebook = nn.Parameter(torch.randn(codebook_size, self.lookup_dim))

    def lookup_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Tokens (N, D) -> unit vectors in the lookup space (N, d)."""
        return F.normalize(self.project_in(z), dim=-1)

    def lookup_codes(self) -> torch.Tensor:
        """The (K, d) unit codes tokens are matched against."""
        return F.normalize(self.codebook, dim=-1)

    def codes(self) -> torch.Tensor:
        """The (K, D) vectors the decoder receives for each index: P_out(e_k)."""
        return self.project_out(self.lookup_codes())

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        u = self.lookup_tokens(z)
        unit_codes = self.lookup_codes()
        # Both sides are unit vectors: largest cosine similarity = smallest L2 distance.
        indices, _ = nearest_code(u.detach(), unit_codes.detach(), "cosine")
        e = F.embedding(indices, unit_codes)
        # Both terms in the lookup space, on unit vectors.
        return QuantizerOutput(self.project_out(straight_through(u, e)), indices, self.vq_losses(u, e))
