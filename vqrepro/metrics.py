"""Every metric, one definition each (documented in docs/metrics.md).

Reconstruction metrics take images in [0, 1]. Codebook metrics take the counts of
each code (over the whole evaluation split, or one training batch for the logged
``batch_usage`` and ``batch_perplexity``). Only torch and numpy are imported here:
vqrepro.quantizers uses the codebook metrics and must stay light.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def codebook_usage(counts: torch.Tensor) -> float:
    """Share of codes used at least once."""
    return float((counts > 0).float().mean())


def perplexity(counts: torch.Tensor, dtype: torch.dtype = torch.float64) -> float:
    """exp(entropy) of the code frequencies; K for uniform use, 1 for a single code.

    ``dtype`` is the arithmetic. Evaluation uses float64 and sums the terms of the codes in
    use; the batch statistic logged at every training step uses float32 and sums every
    code's term (an unused code's is an exact zero). The two summations can differ in the
    last bits; each is kept as it has always been computed, so that evaluated and logged
    values stay bit-identical.
    """
    frequencies = counts.to(dtype)
    probs = frequencies / frequencies.sum().clamp_min(1)
    if dtype == torch.float64:
        probs = probs[probs > 0]
    # 1e-12 is below any frequency of a used code (1 / tokens), so it only guards log(0).
    return float(torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum()))


def mse_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).flatten(1).mean(1)


def psnr_per_image(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """10 log10(1 / MSE) per image, data range 1."""
    return 10.0 * torch.log10(1.0 / mse_per_image(x, y).clamp_min(eps))


def ssim_window_size(height: int, width: int, preferred: int = 11) -> int:
    """11, or the largest odd size that fits an image smaller than 11 pixels."""
    size = min(preferred, height, width)
    return size if size % 2 == 1 else size - 1


def _gaussian_window(size: int, sigma: float, channels: int, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_per_image(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, window: int | None = None) -> torch.Tensor:
    """SSIM (Wang et al., 2004), Gaussian window 11 / sigma 1.5, data range 1, valid region, mean over channels."""
    channels, h, w = x.shape[1:]
    size = window or ssim_window_size(h, w)
    kernel = _gaussian_window(size, sigma, channels, x.dtype, x.device)
    c1, c2 = 0.01**2, 0.03**2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    Tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix S1^(1/2) S2 S1^(1/2) (the same spectrum), which stays exact for the
    singular covariances that low-dimensional or ReLU features give, where a general
    matrix square root is unstable.
    """
    diff = mu1 - mu2
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum())
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


class RunningMean:
    """Mean of per-image values accumulated over batches."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: torch.Tensor) -> None:
        self.total += float(values.double().sum())
        self.count += values.numel()

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan
