"""CVQ-VAE: online clustered codebook (Zheng & Vedaldi, ICCV 2023).

A learnable VQ codebook (straight-through estimator, the VQ losses with beta on
the encoder side) plus a re-initialisation of rarely used codes towards encoded
features ("anchors"), every training step:

    p     <- decay p + (1 - decay) n / N            running share of the tokens each code receives
    gamma  = exp(-(p K 10) / (1 - decay) - 1e-3)    ~1 for an unused code, ~0 for a used one
    C     <- C (1 - gamma) + anchor gamma            per code, gamma broadcast over D

as in lyndonzheng/CVQ-VAE's ``quantise.py`` (decay 0.99; p starts at 0, so the
first training batch re-initialises every code that batch leaves (almost) unused).
The rule runs in training mode only: an evaluation forward changes nothing
(the public code never switches to eval mode, so its evaluation batches move codes;
that fault is not copied).

Settings (defaults are the public code's training defaults, ``main.py``):

- ``distance`` (cosine | l2): the lookup metric. "cosine" l2-normalises tokens and
  codes for the lookup only; z_q is the raw code, the VQ losses are on raw vectors,
  and anchors are raw (un-normalised) features. The "closest" and "probability"
  anchors use the same metric as the lookup, as the code does.
- ``anchor``: which batch feature each code is pulled to.
  ``closest``: the nearest feature to each code (the paper's and main.py's default;
  the class default in quantise.py is "probrandom");
  ``random``: the code's FeaturePool, K slots; a batch with more than K tokens refills
  every slot with tokens drawn uniformly with replacement, a smaller batch fills the
  empty slots first and then overwrites random earlier slots, so small batches draw
  on a history of features; the pool lives in buffers;
  ``unique``: K distinct tokens of the batch, drawn uniformly without replacement
  (a permutation repeated when the batch has fewer than K tokens). The public code
  has no "unique"; this is our reading of the name in the paper's anchor-sampling
  table: random sampling in which no two codes share an anchor;
  ``probability``: for each code, one token drawn with probability
  softmax_i(-d(code, z_i)) (temperature 1), the code's "probrandom"; drawn with the
  Gumbel-max trick in bounded chunks, never building the N x K softmax. With cosine
  distance the weights differ by at most e^2, so this is close to uniform sampling.
  ``closest`` and ``probability`` pull a code towards the features near it;
  ``random`` and ``unique`` ignore where the code is.
- ``mode``: online (every training step) or offline (the rule runs once, on the first
  training batch, then plain VQ; the code's ``first_batch``). A buffer remembers
  that the offline re-initialisation happened, so it survives a resume.
- ``reinit``: the three rows of the paper's "codebook reinitialisation" table.
  ``running_average`` is the rule above (CVQ-VAE). The other two re-initialise only
  "dead" codes, those with gamma > ``dead_gamma`` (same running usage p, made binary),
  and associate each with a single vector: ``hard_features`` replaces a dead code by
  its anchor (C_k <- anchor_k; Jukebox's random restart, the paper's [8]);
  ``near_codes`` replaces it by a used code plus Gaussian noise of ``near_noise``
  times that code's norm, the used code drawn with probability proportional to p
  among the live codes (HQA's reset near the most used code, the paper's [39]).
- ``contrastive``: the code's optional contrastive loss (off in main.py; its README
  uses it for the paper's Table 3 ablation). With similarities s(z_i, c_k) of detached
  tokens (cosine similarity, or minus the squared distance for l2, as in the code),
  per code the positive is the mean of its max(1, N // K) highest similarities and
  the negatives are its N // 2 lowest; loss = cross-entropy with the positive as the
  target over [pos, negs] / temperature (0.07), averaged over codes. Only the
  codebook receives its gradient. It builds the full N x K similarity matrix
  (it needs every token's similarity to every code), so it costs O(N K) memory.

Losses: ``commit`` = commit_weight ||z - sg(z_q)||^2 (beta 0.25), ``codebook`` =
codebook_weight ||sg(z) - z_q||^2 (1.0), and ``contrastive`` in training when on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, QuantizerOutput, check_choices, straight_through
from .search import DEFAULT_MAX_ELEMENTS, nearest_code

ANCHORS = ("closest", "random", "unique", "probability")
MODES = ("online", "offline")
REINITS = ("running_average", "hard_features", "near_codes")
DISTANCES = ("cosine", "l2")
# The constants of gamma in the public code: exp(-(p * K * 10) / (1 - decay) - 1e-3).
GAMMA_SCALE = 10.0
GAMMA_EPSILON = 1e-3


@dataclass
class CVQSettings:
    # Encoder side: commit_weight * ||z - sg(z_q)||^2 (the "beta" of the CVQ-VAE code).
    commit_weight: float = 0.25
    # Codebook side: codebook_weight * ||sg(z) - z_q||^2.
    codebook_weight: float = 1.0
    distance: str = "cosine"
    anchor: str = "closest"
    mode: str = "online"
    reinit: str = "running_average"
    decay: float = 0.99
    # hard_features / near_codes: a code with gamma above this is dead.
    dead_gamma: float = 0.5
    # near_codes: noise std as a fraction of the copied code's norm.
    near_noise: float = 0.01
    contrastive: bool = False
    contrastive_weight: float = 1.0
    contrastive_temperature: float = 0.07


class FeaturePool(nn.Module):
    """The public code's feature pool: K slots of recent encoder features, in buffers."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.size = size
        self.register_buffer("features", (torch.rand(size, dim) * 2.0 - 1.0) / size)
        self.register_buffer("filled", torch.tensor(0))

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> torch.Tensor:
        """Store a batch of features (N, D) and return the pool (K, D)."""
        n, k = z.shape[0], self.size
        z = z.to(self.features.dtype)
        if n > k:
            self.features.copy_(z[torch.randint(0, n, (k,), device=z.device)])
            self.filled.fill_(k)
            return self.features
        filled = int(self.filled)
        fit = min(n, k - filled)
        if fit:
            self.features[filled:filled + fit] = z[:fit]
            self.filled.fill_(filled + fit)
        rest = z[fit:]
        if rest.shape[0]:  # overwrite random slots filled before this batch (n <= K: enough of them)
            self.features[torch.randperm(filled, device=z.device)[: rest.shape[0]]] = rest
        return self.features


class CVQQuantizer(Quantizer):
    Settings = CVQSettings
    paper = "CVQ-VAE, 'Online Clustered Codebook' (Zheng & Vedaldi, ICCV 2023); code lyndonzheng/CVQ-VAE"

    def __init__(self, codebook_size: int, code_dim: int, settings: CVQSettings):
        super().__init__(codebook_size, code_dim, settings)
        s = settings
        check_choices(s, distance=DISTANCES, anchor=ANCHORS, mode=MODES, reinit=REINITS)
        if not 0.0 <= s.decay < 1.0:
            raise ValueError(f"quantizer setting decay must lie in [0, 1), got {s.decay}")
        if not 0.0 < s.dead_gamma < 1.0:
            raise ValueError(f"quantizer setting dead_gamma must lie in (0, 1), got {s.dead_gamma}")
        if s.near_noise < 0.0:
            raise ValueError(f"quantizer setting near_noise must be >= 0, got {s.near_noise}")
        if s.contrastive_temperature <= 0.0:
            raise ValueError(f"quantizer setting contrastive_temperature must be > 0, got {s.contrastive_temperature}")
        # Uniform(-1/K, 1/K), as in the CVQ-VAE code.
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, code_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        )
        self.register_buffer("usage", torch.zeros(codebook_size))  # running usage p
        self.register_buffer("initialised", torch.tensor(False))  # offline: the one re-initialisation ran
        self.pool = FeaturePool(codebook_size, code_dim) if s.anchor == "random" else None
        #: bound on distances held at once by the anchor searches (tests lower it)
        self.max_elements = DEFAULT_MAX_ELEMENTS

    def codes(self) -> torch.Tensor:
        return self.codebook

    def gamma(self) -> torch.Tensor:
        """Per-code re-initialisation weight from the running usage, (K,)."""
        s = self.settings
        return torch.exp(-(self.usage * self.codebook_size * GAMMA_SCALE) / (1.0 - s.decay) - GAMMA_EPSILON)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        s = self.settings
        flat = z.detach()
        indices, _ = nearest_code(flat, self.codebook.detach(), s.distance)
        # F.embedding saves only the indices for backward, so the in-place
        # re-initialisation below leaves this step's gradients intact.
        z_q = F.embedding(indices, self.codebook)
        losses = self.vq_losses(z, z_q)
        stats: dict[str, float] = {}
        if self.training:
            if s.contrastive:
                losses["contrastive"] = s.contrastive_weight * self.contrastive_loss(flat)
            stats["dead_share"] = self._update(flat, indices)
        return QuantizerOutput(straight_through(z, z_q), indices, losses, stats)

    # ------------------------------------------------------------------ training-time rule

    @torch.no_grad()
    def _update(self, z: torch.Tensor, indices: torch.Tensor) -> float:
        """Update the running usage, re-initialise codes; return the share of dead codes."""
        s = self.settings
        counts = torch.bincount(indices, minlength=self.codebook_size).to(self.usage.dtype)
        self.usage.mul_(s.decay).add_(counts / max(indices.numel(), 1), alpha=1.0 - s.decay)
        gamma = self.gamma()
        if s.mode == "online" or not bool(self.initialised):
            self.reinitialise(z, gamma)
            self.initialised.fill_(True)
        return (gamma > s.dead_gamma).float().mean().item()

    @torch.no_grad()
    def reinitialise(self, z: torch.Tensor, gamma: torch.Tensor) -> None:
        """Apply the ``reinit`` rule with per-code weights ``gamma`` to the codebook."""
        s = self.settings
        codebook = self.codebook  # in place under no_grad; autograd would flag a saved copy
        if s.reinit == "running_average":
            anchors = self.anchors(z, torch.arange(self.codebook_size, device=z.device))
            g = gamma.unsqueeze(1).to(codebook.dtype)
            codebook.copy_(codebook * (1.0 - g) + anchors * g)
            return
        dead = (gamma > s.dead_gamma).nonzero().squeeze(1)
        if s.reinit == "hard_features":
            if self.pool is not None:
                self.pool.update(z)  # the pool sees every step's batch, dead codes or not
            if dead.numel():
                codebook[dead] = self.anchors(z, dead, pool_updated=True)
            return
        # near_codes
        weights = self.usage * (gamma <= s.dead_gamma)
        if dead.numel() and bool(weights.sum() > 0):  # no live code: nothing to copy yet
            source = codebook[torch.multinomial(weights, dead.numel(), replacement=True)]
            noise = torch.randn_like(source) * source.norm(dim=1, keepdim=True) * s.near_noise
            codebook[dead] = source + noise

    @torch.no_grad()
    def anchors(self, z: torch.Tensor, codes: torch.Tensor, pool_updated: bool = False) -> torch.Tensor:
        """One anchor feature (rows of z) for each code id in ``codes``, (len(codes), D)."""
        s = self.settings
        z = z.to(self.codebook.dtype)
        n, m = z.shape[0], codes.numel()
        if s.anchor == "closest":
            # The closest feature to each code: a nearest-code search with the roles swapped.
            nearest, _ = nearest_code(self.codebook.data[codes], z, s.distance, self.max_elements)
            return z[nearest]
        if s.anchor == "random":
            pool = self.pool.features if pool_updated else self.pool.update(z)
            return pool[codes]
        if s.anchor == "unique":
            order = torch.randperm(n, device=z.device)
            return z[order.repeat(math.ceil(m / n))[:m]]
        return z[softmax_sample(self.codebook.data[codes], z, s.distance, self.max_elements)]

    def contrastive_loss(self, z: torch.Tensor) -> torch.Tensor:
        """The public code's contrastive term on detached tokens z (N, D); gradient to the codebook only."""
        s = self.settings
        # A copy, so that the in-place re-initialisation after this forward cannot
        # change the tensors this loss saved for backward.
        codes = self.codebook.clone()
        if s.distance == "cosine":
            similarity = F.normalize(z, dim=1) @ F.normalize(codes, dim=1).t()
        else:
            similarity = -(z.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2.0 * z @ codes.t())
        n = z.shape[0]
        positive = similarity.topk(max(1, n // self.codebook_size), dim=0).values.mean(0, keepdim=True)
        negative = -(-similarity).topk(n // 2, dim=0).values
        logits = torch.cat([positive, negative]).t() / s.contrastive_temperature
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=z.device))


@torch.no_grad()
def softmax_sample(codes: torch.Tensor, z: torch.Tensor, metric: str,
                   max_elements: int = DEFAULT_MAX_ELEMENTS) -> torch.Tensor:
    """For each code, the index of one row of z drawn with probability softmax_i(-d(code, z_i)).

    Gumbel-max over chunks of z: argmax_i(-d_i + G_i) with G_i ~ Gumbel(0, 1) is an exact
    draw from the softmax, and a running maximum keeps at most ``max_elements`` scores.
    ``metric``: "l2" (squared Euclidean) or "cosine" (1 - cosine similarity).
    """
    if metric == "cosine":
        codes, z = F.normalize(codes, dim=1), F.normalize(z, dim=1)
    k = codes.shape[0]
    best = torch.full((k,), -math.inf, dtype=codes.dtype, device=codes.device)
    index = torch.zeros(k, dtype=torch.long, device=codes.device)
    code_sq = codes.pow(2).sum(1, keepdim=True)
    chunk = max(1, max_elements // max(k, 1))
    for start in range(0, z.shape[0], chunk):
        part = z[start:start + chunk]
        if metric == "cosine":
            dist = 1.0 - codes @ part.t()
        else:
            dist = (code_sq + part.pow(2).sum(1) - 2.0 * codes @ part.t()).clamp_min_(0.0)
        gumbel = -torch.empty_like(dist).exponential_().log()
        score, arg = (gumbel - dist).max(dim=1)
        better = score > best
        best = torch.where(better, score, best)
        index = torch.where(better, arg + start, index)
    return index
