"""FSQ: finite scalar quantization (Mentzer et al., 2023, "VQ-VAE Made Simple").

The token is projected to d = len(levels) channels (a linear layer, only when D != d),
each channel i is bounded to L_i values and rounded with a straight-through gradient:

    bound(x)_i = tanh(x_i + shift_i) * h_i - offset_i,   h_i = (L_i - 1)(1 - eps) / 2,
    offset_i = 0.5 if L_i is even else 0,   shift_i = atanh(offset_i / h_i),
    zhat_i = round_ste(bound(x)_i) / (L_i // 2),

and the result is projected back to D channels. The half offset puts the L_i values of
an even level count at the integers -L/2 .. L/2 - 1 (odd: -(L-1)/2 .. (L-1)/2), and the
shift keeps bound(0) = 0. The paper's appendix code writes ``tan`` for the shift, which
is not the inverse of tanh; we use atanh (identical to 3 decimals for the paper's levels,
and exactly zero-centred).

The implicit codebook is the grid prod_i L_i; a grid point's index is its mixed-radix
code with the first channel least significant (as vector-quantize-pytorch). There is no
codebook and no auxiliary loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import Quantizer, QuantizerOutput

#: The FSQ paper's recommended levels for a target codebook size (Table 1 / Section 4.1).
#: The grids have prod(levels) codes, close to the target: 240, 1000, 4375, 15360, 64000.
#: K may be the grid size or the target; a target K > prod(levels) leaves K - prod(levels)
#: indices unused; 2^12 (4375 > 4096 codes) is accepted only as K = 4375.
RECOMMENDED_LEVELS: dict[int, list[int]] = {
    2**8: [8, 6, 5],
    2**10: [8, 5, 5, 5],
    2**12: [7, 5, 5, 5, 5],
    2**14: [8, 8, 8, 6, 5],
    2**16: [8, 8, 8, 5, 5, 5],
}

BOUND_EPS = 1e-3


def check_levels(levels: list[int] | None) -> None:
    """Levels that make a grid at all: None (the paper's table), or one level count >= 3 per channel."""
    if levels is None:
        return
    if not isinstance(levels, list) or not levels:
        raise ValueError(
            f"setting 'levels' of fsq: {levels!r} gives no channel; leave it out (or null) for the FSQ paper's "
            "levels for K, or list one level count (>= 3) per channel with prod(levels) == K"
        )
    if any(not isinstance(l, int) or isinstance(l, bool) or l < 3 for l in levels):
        raise ValueError(
            f"setting 'levels' of fsq must be integers >= 3, got {levels} "
            "(a level count of 2 cannot be zero-centred by the FSQ bound)"
        )


def resolve_levels(levels: list[int] | None, codebook_size: int) -> list[int]:
    """The levels to use for codebook size K: the given ones (prod must be K) or, for None, the paper's table."""
    if levels is not None:
        check_levels(levels)
        if math.prod(levels) != codebook_size:
            raise ValueError(
                f"setting 'levels' of fsq: prod({levels}) = {math.prod(levels)} must equal the codebook size K = {codebook_size}"
            )
        return list(levels)
    for target, recommended in RECOMMENDED_LEVELS.items():
        size = math.prod(recommended)
        if codebook_size == size or (codebook_size == target and size <= codebook_size):
            return list(recommended)
        if codebook_size == target:  # 2^12 -> [7, 5, 5, 5, 5] has 4375 > 4096 codes: indices would overflow K
            raise ValueError(
                f"setting 'levels' of fsq is not set and the FSQ paper's levels for K = {target} are {recommended}, "
                f"with {size} > {target} codes; use codebook size {size} or set 'levels' explicitly with prod(levels) == K"
            )
    table = ", ".join(f"{math.prod(l)} or {t} -> {l}" if math.prod(l) <= t else f"{math.prod(l)} -> {l}"
                      for t, l in RECOMMENDED_LEVELS.items())
    raise ValueError(
        f"setting 'levels' of fsq is not set and the FSQ paper recommends no levels for codebook size K = {codebook_size}; "
        f"recommended: {table}. Set 'levels' explicitly with prod(levels) == K"
    )


@dataclass
class FSQSettings:
    # Levels per channel, each >= 3; prod(levels) must equal K. None (left out): the FSQ paper's
    # recommendation for K. An empty list is refused: it would read as "no channels", not "not given".
    levels: list[int] | None = None

    def __post_init__(self):
        """Checked when a preset is read; that prod(levels) is K waits for K (FSQQuantizer)."""
        check_levels(self.levels)


class FSQQuantizer(Quantizer):
    Settings = FSQSettings
    paper = "FSQ (Mentzer et al., 2023), finite scalar quantization"

    def __init__(self, codebook_size: int, code_dim: int, settings: FSQSettings):
        super().__init__(codebook_size, code_dim, settings)
        levels = resolve_levels(settings.levels, codebook_size)
        self.levels = levels
        #: codes in the grid: K, or prod(levels) < K when K is a table target such as 2^10
        self.num_codes = math.prod(levels)
        d = len(levels)
        levels_t = torch.tensor(levels, dtype=torch.long)
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", torch.cumprod(torch.tensor([1] + levels[:-1]), 0), persistent=False)
        half = (levels_t - 1).double() * (1 - BOUND_EPS) / 2
        offset = torch.where(levels_t % 2 == 0, 0.5, 0.0).double()
        self.register_buffer("_half", half.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half).float(), persistent=False)
        self.register_buffer("_half_width", (levels_t // 2).float(), persistent=False)
        projected = code_dim != d
        self.project_in = nn.Linear(code_dim, d) if projected else nn.Identity()
        self.project_out = nn.Linear(d, code_dim) if projected else nn.Identity()

    # ------------------------------------------------------------------ the grid

    def bound(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x + self._shift) * self._half - self._offset

    def quantize_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Projected tokens (N, d) -> grid points (N, d), straight-through round."""
        bounded = self.bound(x)
        return (bounded + (bounded.round() - bounded).detach()) / self._half_width

    def grid_to_indices(self, grid: torch.Tensor) -> torch.Tensor:
        level_index = (grid * self._half_width + self._half_width).round().long()
        return (level_index * self._basis).sum(-1)

    def indices_to_grid(self, indices: torch.Tensor) -> torch.Tensor:
        level_index = (indices.long().unsqueeze(-1) // self._basis) % self._levels
        return (level_index.to(self._half_width.dtype) - self._half_width) / self._half_width

    # ------------------------------------------------------------------ interface

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        grid = self.quantize_grid(self.project_in(z))
        indices = self.grid_to_indices(grid.detach())
        return QuantizerOutput(self.project_out(grid), indices, {})

    def codes(self) -> torch.Tensor:
        """All prod(levels) grid points, projected back to D channels: (prod(levels), D)."""
        return self.lookup(torch.arange(self.num_codes, device=self._levels.device))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise IndexError(f"FSQ indices must lie in [0, {self.num_codes}), got range "
                             f"[{indices.min().item()}, {indices.max().item()}]")
        return self.project_out(self.indices_to_grid(indices))
