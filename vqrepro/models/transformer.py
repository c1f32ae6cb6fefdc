"""Token priors over a tokenizer's code grids: one transformer, two ways to use it.

- ``autoregressive``: GPT-style, causal attention over raster-ordered tokens after a
  start token (as taming-transformers' stage 2).
- ``maskgit``: bidirectional attention; training masks a cosine-scheduled share of
  the tokens and predicts them (Chang et al., 2022).
Both share the embedding, a pre-LN transformer encoder and the output head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRIOR_KINDS = ("autoregressive", "maskgit")


@dataclass
class PriorSettings:
    kind: str
    layers: int
    heads: int
    width: int
    dropout: float


class TokenTransformer(nn.Module):
    """Predicts a distribution over K codes at each of L positions."""

    def __init__(self, codebook_size: int, length: int, s: PriorSettings):
        super().__init__()
        if s.kind not in PRIOR_KINDS:
            raise ValueError(f"unknown prior kind {s.kind!r}; use one of {PRIOR_KINDS}")
        self.kind, self.codebook_size, self.length = s.kind, codebook_size, length
        self.special = codebook_size  # start token (autoregressive) or mask token (maskgit)
        self.embed = nn.Embedding(codebook_size + 1, s.width)
        self.position = nn.Parameter(torch.zeros(1, length, s.width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(s.width, s.heads, 4 * s.width, s.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(s.width)
        self.head = nn.Linear(s.width, codebook_size)
        causal = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal if s.kind == "autoregressive" else None, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) with ids in [0, K] (K = start/mask) -> logits (B, L, K)."""
        h = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        mask = self.causal_mask[: tokens.shape[1], : tokens.shape[1]] if self.causal_mask is not None else None
        return self.head(self.norm(self.blocks(h, mask=mask)))

    def shifted_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """Autoregressive input: start token, then all tokens but the last."""
        start = torch.full_like(tokens[:, :1], self.special)
        return torch.cat([start, tokens[:, :-1]], dim=1)
