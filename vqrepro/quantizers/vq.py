"""VQ-VAE quantizer (van den Oord et al., 2017) and the add-ons of "Straightening Out the STE".

The plain method: nearest code by L2, straight-through gradient, a commitment
term on the encoder side and a codebook term on the codebook side. Each add-on of
Huh et al. (2023) is one setting, off by default, and they combine as the paper
combines them ("VQ-VAE + affine + alternating + replace + l2"):

- ``init``: uniform(-1/K, 1/K) (VQ-VAE code), normal N(0, 1), kaiming (PyTorch's
  kaiming-uniform for a (K, D) weight), or kmeans (k-means++ and Lloyd steps on the
  first training batch); ``repeat_kmeans`` re-runs it at the start of every epoch
  (Lancucki et al., 2020; "Rep. KM" of Table 1); with another init it first runs at the
  start of the second epoch (Table 1's "Kaiming + Rep. KM");
- ``l2_normalize``: tokens and codes are projected onto the unit sphere before lookup;
- ``affine``: affine reparameterisation of the codebook (affine.py);
- ``sync_nu``: synchronised commitment, z_q' = z + sg(z_q - z) + nu*z_q - sg(nu*z_q),
  which changes no forward value and sends nu times the task gradient to the codes;
- ``inner_steps``: alternating optimisation (train.py takes the inner steps);
- ``outer_steps``: task steps per mini-batch, each on an even sub-batch (the "outer"
  loop of Table 10 / Appendix A.11; train.py splits the batch);
- ``stochastic_temperature``: stochastic code sampling, the "Stochastic" row of Table 1
  (Sec. 3, Eq. 12, after Takida et al., 2022): in training mode each token's code is
  drawn from Categorical(softmax(-d(z, c_j) / tau)) over the codebook, d the search
  distance (squared L2, or 1 - cosine); ``stochastic_decay`` anneals tau geometrically,
  tau(step) = stochastic_temperature * exp(-stochastic_decay * step), the form of
  SQ-VAE's official schedule (exp(-1e-5 * step)) and the "geometric decay" the paper's
  appendix uses for SQ-VAE. Eval mode and tau = 0 keep the nearest code. The sampled
  code is the one used everywhere (output, commitment and codebook losses, LRU usage);
  alternating optimisation's inner steps stay on the nearest code (Eq. 17);
- ``replace_after``: LRU replacement of codes idle for that many steps (replacement.py);
- ``estimator``: "ste" (straight-through) or "rotation" (the rotation trick of
  Fifty et al., 2024: z is rotated and rescaled onto its code, so the gradient
  reaching z is rotated by the same angle instead of copied).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import affine as affine_module
from .base import Quantizer, QuantizerOutput, check_choices, check_count, straight_through
from .kmeans import kmeans
from .replacement import LRUReplacement
from .search import DEFAULT_MAX_ELEMENTS, distance_chunks, nearest_code

INITS = ("uniform", "normal", "kaiming", "kmeans")
ESTIMATORS = ("ste", "rotation")
DISTANCES = ("l2", "cosine")
# Upper bounds of the step counts per batch. The STE paper's Table 10 uses 1 to 8 of each. Every inner
# or outer step is a whole optimiser step, so 1000 already makes one training step cost ~1000 steps, and
# the batch they split (train.py: the batch's tokens over the inner steps, its images over the outer ones)
# rarely has more parts to give; 10^12 would, in effect, never finish a step.
MAX_INNER_STEPS = 1000
MAX_OUTER_STEPS = 1000
# setting -> (lowest, highest, the value that is off (0: joint training; there is no other switch for
# alternating optimisation), where the bounds come from)
STEP_COUNTS = {
    "inner_steps": (1, MAX_INNER_STEPS, 0,
                    "codebook steps before each task step; the STE paper's Table 10 uses 1 to 8"),
    "outer_steps": (1, MAX_OUTER_STEPS, None,
                    "task steps per batch, 1: one; the STE paper's Table 10 uses 1 to 8"),
}


def check_step_counts(values: dict) -> None:
    """The step counts among ``values``, with a message that says the counts allowed (even for 1.5 or true)."""
    for name, (lowest, highest, off, why) in STEP_COUNTS.items():
        if name in values:
            check_count(name, values[name], lowest, highest, off, why)


@dataclass
class VQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (the "beta" of CVQ-VAE's and SimVQ's code).
    commit_weight: float = 0.25
    # Codebook side: codebook_weight * ||sg(z) - z_q||^2.
    codebook_weight: float = 1.0
    distance: str = "l2"
    init: str = "uniform"
    kmeans_iters: int = 10
    repeat_kmeans: bool = False
    l2_normalize: bool = False
    affine: str = "none"            # none | learnable | ema
    affine_lr_scale: float = 1.0    # "a" of the learnable variant (paper: 2 to 10)
    affine_momentum: float = 0.1    # "m" of the EMA variant (paper: 0.01 to 0.1)
    sync_nu: float = 0.0
    inner_steps: int = 0            # codebook steps per task step (alternating optimisation); 0: off, joint training
    outer_steps: int = 1            # task steps per batch on even sub-batches (Table 10); >= 1
    replace_after: int = 0          # LRU timeout in steps; 0 disables (paper: 20)
    replace_noise: float = 0.01
    estimator: str = "ste"
    # Stochastic sampling (Table 1 "Stochastic"): tau at step 0; 0 = deterministic nearest code.
    stochastic_temperature: float = 0.0
    # Geometric annealing rate: tau(step) = stochastic_temperature * exp(-stochastic_decay * step);
    # 0 keeps tau fixed. SQ-VAE's official schedule is 1e-5 (the paper states no value).
    stochastic_decay: float = 0.0

    def __post_init__(self):
        """Checked when a preset is read (vqrepro.config checks every preset, even one no study uses yet)."""
        check_choices(self, init=INITS, estimator=ESTIMATORS, affine=affine_module.MODES, distance=DISTANCES)
        check_step_counts(vars(self))
        for name in ("commit_weight", "codebook_weight", "sync_nu"):  # a negative weight pulls the other way
            if getattr(self, name) < 0:
                raise ValueError(f"quantizer setting {name} must be >= 0, got {getattr(self, name)}")
        if not self.affine_lr_scale > 0:
            raise ValueError(f"quantizer setting affine_lr_scale must be > 0 (paper: 2 to 10), "
                             f"got {self.affine_lr_scale}")
        if not 0.0 < self.affine_momentum <= 1.0:
            raise ValueError(f"quantizer setting affine_momentum must lie in (0, 1], got {self.affine_momentum}")
        if self.replace_after < 0 or self.kmeans_iters < 0:
            raise ValueError("quantizer settings replace_after and kmeans_iters must be >= 0, "
                             f"got {self.replace_after}, {self.kmeans_iters}")
        if self.stochastic_temperature < 0 or self.stochastic_decay < 0:
            raise ValueError(f"quantizer settings stochastic_temperature and stochastic_decay must be >= 0, "
                             f"got {self.stochastic_temperature}, {self.stochastic_decay}")


class VectorQuantizer(Quantizer):
    Settings = VQSettings
    paper = ("VQ-VAE (van den Oord et al., 2017); add-ons from Huh et al., 'Straightening Out the "
             "Straight-Through Estimator' (ICML 2023), Secs. 3-5")

    @classmethod
    def settings_from(cls, values: dict) -> VQSettings:
        check_step_counts(values)  # before the generic type check, whose message would not give the range
        return super().settings_from(values)

    def __init__(self, codebook_size: int, code_dim: int, settings: VQSettings):
        super().__init__(codebook_size, code_dim, settings)
        s = settings  # its values were checked when it was made (VQSettings.__post_init__)
        self.codebook = nn.Parameter(self._initial_codebook(codebook_size, code_dim, s.init))
        self.affine = (None if s.affine == "none"
                       else affine_module.AffineReparam(code_dim, s.affine, s.affine_lr_scale, s.affine_momentum))
        self.lru = LRUReplacement(codebook_size, s.replace_after, s.replace_noise) if s.replace_after else None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # LRU replacement due at on_step
        if s.init == "kmeans" or s.repeat_kmeans:
            # Epoch at which k-means last ran; -1 = the codebook has not seen data yet
            # (with another init, epoch 0 counts as done: that init stands for the first epoch).
            self.register_buffer("kmeans_epoch", torch.tensor(-1 if s.init == "kmeans" else 0))

    @staticmethod
    def _initial_codebook(k: int, d: int, init: str) -> torch.Tensor:
        if init == "normal":
            return torch.randn(k, d)
        weight = torch.empty(k, d)
        if init == "kaiming":
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            return weight
        # uniform (and kmeans, overwritten by the first batch)
        return weight.uniform_(-1.0 / k, 1.0 / k)

    @property
    def inner_steps(self) -> int:
        return self.settings.inner_steps

    @property
    def outer_steps(self) -> int:
        return self.settings.outer_steps

    def temperature(self, step: int | None = None) -> float:
        """Sampling temperature tau at ``step`` (default: the current step); 0 = nearest code."""
        s = self.settings
        step = self.step if step is None else step
        return s.stochastic_temperature * math.exp(-s.stochastic_decay * step)

    def codebook_parameters(self) -> list[nn.Parameter]:
        return [self.codebook] + (list(self.affine.parameters()) if self.affine is not None else [])

    def codes(self) -> torch.Tensor:
        codes = self.affine(self.codebook) if self.affine is not None else self.codebook
        return F.normalize(codes, dim=1) if self.settings.l2_normalize else codes

    def _prepare(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=1) if self.settings.l2_normalize else z

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        s = self.settings
        z = self._prepare(z)
        if self.training:
            self._initialise_from_data(z.detach())
            if self.affine is not None:
                self.affine.track(z.detach(), self.codebook.detach())
        codes = self.codes()
        tau = self.temperature() if self.training else 0.0
        if tau > 0:
            indices = sample_code(z.detach(), codes.detach(), tau, s.distance)
        else:
            indices, _ = nearest_code(z.detach(), codes.detach(), s.distance)
        # F.embedding's backward sorts indices instead of racing atomic adds: ~4x faster on GPU.
        z_q = F.embedding(indices, codes)
        losses = self.vq_losses(z, z_q)
        out = rotate_onto(z, z_q.detach()) if s.estimator == "rotation" else straight_through(z, z_q)
        if s.sync_nu:
            out = out + s.sync_nu * z_q - (s.sync_nu * z_q).detach()
        if self.training and self.lru is not None:
            self._schedule_replacement(z.detach(), indices)
        stats = {"temperature": tau} if s.stochastic_temperature > 0 and self.training else {}
        return QuantizerOutput(out, indices, losses, stats)

    def on_step(self, step: int) -> None:
        # Replacing codes inside forward would change tensors autograd saved for this step's
        # backward (the affine map and l2 normalisation keep the codebook), so it waits until here.
        if self._pending is not None:
            self._set_codes(*self._pending)
            self._pending = None

    def alternating_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 17: the codebook-side distance of detached tokens to their (re-searched) codes."""
        z = self._prepare(z.detach())
        codes = self.codes()
        indices, _ = nearest_code(z, codes.detach(), self.settings.distance)
        return F.mse_loss(z, F.embedding(indices, codes))

    @torch.no_grad()
    def _initialise_from_data(self, z: torch.Tensor) -> None:
        if not hasattr(self, "kmeans_epoch"):
            return
        first = int(self.kmeans_epoch) < 0
        if first or (self.settings.repeat_kmeans and self.epoch > int(self.kmeans_epoch)):
            self._set_codes(torch.arange(self.codebook_size, device=z.device),
                            kmeans(z, self.codebook_size, self.settings.kmeans_iters))
            self.kmeans_epoch.fill_(self.epoch)

    @torch.no_grad()
    def _schedule_replacement(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        dead = self.lru.dead_codes(indices)
        self._pending = (dead, self.lru.replacements(z, dead.numel())) if dead.numel() else None

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, values: torch.Tensor) -> None:
        """Place codes so that their effective value (after the affine map) is ``values``."""
        if self.affine is not None:
            values = self.affine.invert(values)
        self.codebook[which] = values


def rotate_onto(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """The rotation trick (Fifty et al., 2024): forward value z_q, gradient rotated like z onto z_q.

    With u = z/|z|, q = z_q/|z_q| and r = (u + q)/|u + q| (all held constant), the map
    e -> e - 2 r (r.e) + 2 q (u.e) rotates u onto q; scaling by |z_q|/|z| gives z_q.
    """
    eps = 1e-8
    with torch.no_grad():
        z_norm = z.norm(dim=1, keepdim=True).clamp_min(eps)
        q_norm = z_q.norm(dim=1, keepdim=True).clamp_min(eps)
        u, q = z / z_norm, z_q / q_norm
        r = F.normalize(u + q, dim=1, eps=eps)
        scale = q_norm / z_norm
    rotated = z - 2.0 * r * (r * z).sum(1, keepdim=True) + 2.0 * q * (u * z).sum(1, keepdim=True)
    return scale * rotated


@torch.no_grad()
def sample_code(
    z: torch.Tensor,
    codebook: torch.Tensor,
    temperature: float,
    metric: str = "l2",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """Draw one code per row of ``z`` from Categorical(softmax(-d(z, c) / temperature)).

    Gumbel-max in its exponential-race form: argmin_j d_j + tau * log(E_j), E_j ~ Exp(1),
    is distributed as that softmax (argmax_j -d_j/tau + G_j with G_j = -log E_j Gumbel),
    and never divides by tau, so a tiny tau cannot overflow. As in ``nearest_code``,
    tokens go in chunks so that at most ``max_elements`` distances exist at once, and
    ||z||^2 (constant per row, irrelevant to the softmax) is left out. The noise comes
    from torch's global generator, so ``torch.manual_seed`` makes draws reproducible.
    """
    if temperature <= 0:
        return nearest_code(z, codebook, metric, max_elements)[0]
    indices = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    tiny = torch.finfo(z.dtype).tiny
    for start, part, dist in distance_chunks(z, codebook, metric, max_elements):
        noise = torch.empty_like(dist).exponential_().clamp_min_(tiny).log_()
        indices[start : start + len(part)] = dist.add_(noise, alpha=temperature).argmin(dim=1)
    return indices
