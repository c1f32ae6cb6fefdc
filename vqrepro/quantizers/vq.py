"""Plain VQ-VAE quantizer (van den Oord et al., 2017) with the straight-through estimator."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, straight_through
from .search import nearest_code


@dataclass
class VQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (the "beta" of CVQ-VAE's and SimVQ's code).
    commit_weight: float = 0.25
    # Codebook side: codebook_weight * ||sg(z) - z_q||^2.
    codebook_weight: float = 1.0
    distance: str = "l2"


class VectorQuantizer(Quantizer):
    Settings = VQSettings
    paper = "VQ-VAE (van den Oord et al., 2017); baseline in all three papers"

    def __init__(self, codebook_size: int, code_dim: int, settings: VQSettings):
        super().__init__(codebook_size, code_dim, settings)
        # Uniform(-1/K, 1/K), the initialisation of the VQ-VAE and CVQ-VAE code.
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, code_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        )

    def codes(self) -> torch.Tensor:
        return self.codebook

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        indices, _ = nearest_code(z.detach(), self.codebook.detach(), self.settings.distance)
        # F.embedding's backward sorts indices instead of racing atomic adds: ~4x faster on GPU.
        z_q = F.embedding(indices, self.codebook)
        losses = {
            "commit": self.settings.commit_weight * F.mse_loss(z, z_q.detach()),
            "codebook": self.settings.codebook_weight * F.mse_loss(z.detach(), z_q),
        }
        return QuantizerOutput(straight_through(z, z_q), indices, losses)
