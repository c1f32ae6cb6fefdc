"""SimVQ (Zhu et al., "Addressing Representation Collapse in Vector Quantized Models with One Linear Layer", 2024).

A frozen base codebook C (K x D) seen through one learnable linear layer W: the codes
that tokens are matched against, and decoded from, are W(C). Only W learns, so a
gradient step on W moves every code at once, whether it was chosen in the batch or not.

Following the public code (youngsheen/SimVQ, taming/modules/vqvae/quantize.py, class SimVQ,
with its ImageNet config ``legacy: false``):

- C ~ N(0, 1/D) (``nn.init.normal_(std=e_dim**-0.5)``), never trained; here a buffer,
  so it gets no gradient and is saved in the state dict;
- W = ``nn.Linear(D, D)`` with a bias and PyTorch's default initialisation; ``bias: false``
  gives lucidrains' ``SimVQ`` and the NS-VQ ImageNet code (``nn.Linear(D, D, bias=False)``);
- nearest code by squared L2 distance to W(C); plain straight-through estimator;
- loss ``beta * ||sg(z_q) - z||^2 + ||z_q - sg(z)||^2`` with beta = 0.25: commit_weight 0.25
  on the encoder side, codebook_weight 1 on the codebook side (whose gradient reaches W only).

Not copied: the public code's ``get_codebook_entry`` decodes indices with the raw frozen
codebook C, not W(C), so decoding from indices disagrees with the forward pass. Here
``lookup(indices)`` returns W(C)[indices], the same vectors the forward pass emits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, straight_through
from .search import nearest_code


@dataclass
class SimVQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (SimVQ's beta = 0.25).
    commit_weight: float = 0.25
    # Codebook side: codebook_weight * ||sg(z) - z_q||^2; its gradient reaches W only.
    codebook_weight: float = 1.0
    # Bias of W: true in the SimVQ code, false in lucidrains' SimVQ and the NS-VQ code.
    bias: bool = True


class SimVQQuantizer(Quantizer):
    Settings = SimVQSettings
    paper = "SimVQ (Zhu et al., 2024, arXiv:2411.02038; code youngsheen/SimVQ); baseline in NS-VQ Tables 2-4"

    def __init__(self, codebook_size: int, code_dim: int, settings: SimVQSettings):
        super().__init__(codebook_size, code_dim, settings)
        # Frozen base codebook C ~ N(0, 1/D), as the SimVQ code initialises its embedding.
        self.register_buffer("frozen_codebook", torch.randn(codebook_size, code_dim) * code_dim**-0.5)
        # W: PyTorch's default Linear initialisation, as the SimVQ code (no explicit init).
        self.transform = nn.Linear(code_dim, code_dim, bias=settings.bias)

    def codes(self) -> torch.Tensor:
        """W(C): the K codes tokens are matched against and decoded from."""
        return self.transform(self.frozen_codebook)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        codes = self.codes()
        indices, _ = nearest_code(z.detach(), codes.detach(), "l2")
        z_q = F.embedding(indices, codes)
        return QuantizerOutput(straight_through(z, z_q), indices, self.vq_losses(z, z_q))
