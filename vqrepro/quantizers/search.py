"""Nearest-code search shared by every quantizer.

The full N x K distance matrix is never built: tokens are processed in chunks so
that at most ``max_elements`` distances exist at once. With the default bound
(2**22 floats, 16 MiB) a search over K = 65,536 codes and N = 65,536 tokens stays
within a few tens of MiB whatever N is.
"""
from __future__ import annotations

import torch

DEFAULT_MAX_ELEMENTS = 2**22


@torch.no_grad()
def nearest_code(
    z: torch.Tensor,
    codebook: torch.Tensor,
    metric: str = "l2",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (indices, distances) of the closest code for each row of ``z``.

    z: (N, D) tokens; codebook: (K, D). ``metric`` is "l2" (squared Euclidean
    distance) or "cosine" (1 - cosine similarity). Ties go to the lowest index.
    """
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"nearest_code expects z (N, D) and codebook (K, D) with equal D, "
            f"got {tuple(z.shape)} and {tuple(codebook.shape)}"
        )
    indices = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    distances = torch.empty(z.shape[0], dtype=z.dtype, device=z.device)
    for start, part, dist in distance_chunks(z, codebook, metric, max_elements):
        best, idx = dist.min(dim=1)
        if metric == "l2":
            best = (best + part.pow(2).sum(1)).clamp_min_(0.0)
        indices[start : start + len(part)] = idx
        distances[start : start + len(part)] = best
    return indices, distances


def distance_chunks(z: torch.Tensor, codebook: torch.Tensor, metric: str, max_elements: int = DEFAULT_MAX_ELEMENTS):
    """Yield (start, tokens, distances) for consecutive chunks of ``z``, at most ``max_elements`` distances at once.

    "l2": squared Euclidean distance less ||z||^2 (constant per row, so the caller adds it only
    where it needs the value); "cosine": 1 - cosine similarity, tokens and codes normalised.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"unknown distance metric {metric!r}; use 'l2' or 'cosine'")
    if metric == "cosine":
        z = torch.nn.functional.normalize(z, dim=1)
        codebook = torch.nn.functional.normalize(codebook, dim=1)
    chunk = max(1, max_elements // max(codebook.shape[0], 1))
    codebook_t = codebook.t()
    code_sq = codebook.pow(2).sum(1)
    for start in range(0, z.shape[0], chunk):
        part = z[start : start + chunk]
        yield start, part, (1.0 - part @ codebook_t if metric == "cosine"
                            else torch.addmm(code_sq, part, codebook_t, alpha=-2.0))
