""""VQVAE2" as the NS-VQ paper runs it: an EMA codebook in vector-quantize-pytorch's configuration.

The NS-VQ tables cite VQ-VAE-2 (Razavi et al., 2019) for their "VQVAE2" rows. Their public
CelebA code (NS_Trans_VQ_CelebA/models/vq_vae.py, ``vq_mod: ema``, commented "VQ-VAE-2 EMA
codebook") builds the vendored ``vector_quantize_pytorch.VectorQuantize(dim=D,
codebook_size=K, decay=decay, commitment_weight=beta, accept_image_fmap=True,
manual_ema_update=False, threshold_ema_dead_code=1)`` and leaves every other argument at
that library's default. That is the EMA rule and initial state of ``ema`` (ema.py) plus three things:

1. codes start Uniform(-b, b), b = sqrt(6 / (K D)) (the library's ``kaiming_uniform_`` on its
   (1, K, D) buffer), not N(0, 1);
2. (the EMA counts start at 1 and the sums at the codes, as in ``ema``);
3. after each update, every code whose EMA count is below ``dead_code_threshold`` (1) is
   replaced by a random token of the batch, its count reset to the threshold and its sum
   to the token times the threshold;
4. the gradient reaches the encoder through the rotation trick (Fifty et al., 2024; the
   library's default ``rotation_trick=True``), not the plain straight-through estimator.

z_q and the commitment loss use the codes as they were before this batch's update, as in
that library (and Sonnet, rosinality's vq-vae-2-pytorch, taming's EMAVectorQuantizer).
The decay default 0.9995 is the value in the NS-VQ repository's config
(configs_rebuild/*.yaml, ``decay: 0.9995``); VQ-VAE-2 itself uses 0.99.

Each difference is a setting, so the VQ-VAE-2 paper's own quantizer is the preset
``{init: normal, dead_code_threshold: 0, estimator: ste, decay: 0.99}``,
whose codebook trajectory equals ``ema``'s (tests/test_quantizer_vqvae2.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import QuantizerOutput, check_choices, straight_through
from .ema import EMAQuantizer, EMASettings
from .search import nearest_code
from .vq import rotate_onto

INITS = ("kaiming_kd", "normal")
ESTIMATORS = ("rotation", "ste")


@dataclass
class VQVAE2Settings(EMASettings):
    commit_weight: float = 0.25
    # NS-VQ repository config; VQ-VAE-2 and ``ema`` use 0.99.
    decay: float = 0.9995
    epsilon: float = 1e-5
    # kaiming_kd: Uniform(+-sqrt(6 / (K D))) (vector-quantize-pytorch); normal: N(0, 1) (``ema``).
    init: str = "kaiming_kd"
    # Replace codes whose EMA count falls below this by batch tokens; 0 disables.
    dead_code_threshold: float = 1.0
    # rotation (vector-quantize-pytorch's default) or ste.
    estimator: str = "rotation"


def kaiming_kd_init(codebook_size: int, code_dim: int) -> torch.Tensor:
    """vector-quantize-pytorch's codebook init: ``kaiming_uniform_`` of a (1, K, D) tensor.

    Its fan-in is K * D, so the bound is sqrt(2) * sqrt(3 / (K D)) = sqrt(6 / (K D)); the
    draw is the same single ``uniform_`` call, so a seeded draw matches the library's.
    """
    std = math.sqrt(2.0) / math.sqrt(codebook_size * code_dim)
    bound = math.sqrt(3.0) * std
    return torch.empty(codebook_size, code_dim).uniform_(-bound, bound)


class VQVAE2Quantizer(EMAQuantizer):
    Settings = VQVAE2Settings
    paper = ("'VQVAE2' rows of NS-VQ Tables 2-4: EMA codebook (VQ-VAE-2, Razavi et al., 2019) as configured "
             "in the NS-VQ code through vector-quantize-pytorch (dead-code replacement, rotation trick)")

    def __init__(self, codebook_size: int, code_dim: int, settings: VQVAE2Settings):
        super().__init__(codebook_size, code_dim, settings)
        s = settings
        check_choices(s, init=INITS, estimator=ESTIMATORS)
        if s.dead_code_threshold < 0:
            raise ValueError("quantizer setting dead_code_threshold must be >= 0")
        with torch.no_grad():
            if s.init == "kaiming_kd":
                self.codebook.copy_(kaiming_kd_init(codebook_size, code_dim))
            self.embed_sum.copy_(self.codebook)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        s = self.settings
        indices, _ = nearest_code(z.detach(), self.codebook, "l2")
        z_q = self.codebook[indices]  # a copy: the codes before this batch's update
        stats = {}
        if self.training:
            self._ema_update(z.detach(), indices)
            if s.dead_code_threshold > 0:
                stats["replaced_codes"] = float(self._replace_dead_codes(z.detach()))
        losses = {"commit": self.commitment_loss(z, z_q)}
        out = rotate_onto(z, z_q) if s.estimator == "rotation" else straight_through(z, z_q)
        return QuantizerOutput(out, indices, losses, stats)

    @torch.no_grad()
    def _replace_dead_codes(self, z: torch.Tensor) -> int:
        """vector-quantize-pytorch's ``expire_codes_`` as vendored in the NS-VQ code.

        Codes with EMA count < threshold take distinct random batch tokens (with
        repetition only when there are fewer tokens than dead codes); their count is reset
        to the threshold and their sum to token * threshold, a consistent EMA state.
        """
        threshold = self.settings.dead_code_threshold
        dead = self.cluster_size < threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        n = z.shape[0]
        if n >= n_dead:
            pick = torch.randperm(n, device=z.device)[:n_dead]
        else:
            pick = torch.randint(0, n, (n_dead,), device=z.device)
        sampled = z[pick].to(self.codebook.dtype)
        self.codebook[dead] = sampled
        self.cluster_size[dead] = threshold
        self.embed_sum[dead] = sampled * threshold
        return n_dead
