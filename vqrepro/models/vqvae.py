"""A VQ-VAE encoder/decoder family wide enough for the papers' architectures.

One layout, set by ``ModelSettings``:

    encoder: [conv 4x4 stride 2] x downsamples (hidden/2 ... hidden channels), conv 3x3,
             residual stack, 1x1 projection to the code dimension D
    decoder: conv 3x3 from D, residual stack, [transposed conv 4x4 stride 2] x downsamples

- CVQ-VAE's public code (the VQ-VAE of van den Oord et al.): hidden 128, residual
  channels 32, 2 residual layers, ReLU, no output activation, no activation on the latent.
- NS-VQ Table 1 (CelebA-HQ): hidden 256, 6 residual layers, LeakyReLU, Tanh output,
  LeakyReLU after the 1x1 projection and after the decoder's first conv
  (``activate_latent: true``).
Images enter and leave in [-1, 1] (``pixel_range: [-1, 1]``, the CVQ-VAE and taming
code) or in [0, 1] (``pixel_range: [0, 1]``, the NS-VQ code, whose Tanh decoder is fed
and judged against [0, 1] pixels). Callers hold images in [0, 1] and convert with
``images_in`` and ``images_out``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..quantizers import Quantizer, QuantizerOutput


@dataclass
class ModelSettings:
    hidden_channels: int = 128
    residual_layers: int = 2
    residual_channels: int = 32
    downsamples: int = 2
    activation: str = "relu"  # relu | leaky_relu
    output_activation: str = "none"  # none | tanh
    activate_latent: bool = False
    pixel_range: tuple[float, float] = (-1.0, 1.0)  # (-1, 1) or (0, 1)


PIXEL_RANGES = ((-1.0, 1.0), (0.0, 1.0))


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":  # slope 0.01 (torch's default), as the NS-VQ code's nn.LeakyReLU()
        return nn.LeakyReLU(0.01)
    raise ValueError(f"unknown activation {name!r} in model settings; use 'relu' or 'leaky_relu'")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, activation: str):
        super().__init__()
        self.block = nn.Sequential(
            _activation(activation),
            nn.Conv2d(channels, hidden, 3, padding=1),
            _activation(activation),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(s: ModelSettings) -> nn.Sequential:
    blocks = [ResidualBlock(s.hidden_channels, s.residual_channels, s.activation) for _ in range(s.residual_layers)]
    return nn.Sequential(*blocks, _activation(s.activation))


def _stage_channels(s: ModelSettings) -> list[int]:
    """Channels after each stride-2 stage: hidden / 2^(n-1), ..., hidden / 2, hidden."""
    return [max(1, s.hidden_channels // 2 ** (s.downsamples - 1 - i)) for i in range(s.downsamples)]


class Encoder(nn.Module):
    def __init__(self, in_channels: int, code_dim: int, s: ModelSettings):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for channels in _stage_channels(s):
            layers += [nn.Conv2d(previous, channels, 4, stride=2, padding=1), _activation(s.activation)]
            previous = channels
        layers += [nn.Conv2d(previous, s.hidden_channels, 3, padding=1), _residual_stack(s)]
        layers.append(nn.Conv2d(s.hidden_channels, code_dim, 1))
        if s.activate_latent:
            layers.append(_activation(s.activation))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, out_channels: int, code_dim: int, s: ModelSettings):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(code_dim, s.hidden_channels, 3, padding=1)]
        if s.activate_latent:
            layers.append(_activation(s.activation))
        layers.append(_residual_stack(s))
        channels = list(reversed(_stage_channels(s)))[1:] + [out_channels]
        previous = s.hidden_channels
        for i, nxt in enumerate(channels):
            layers.append(nn.ConvTranspose2d(previous, nxt, 4, stride=2, padding=1))
            if i < len(channels) - 1:
                layers.append(_activation(s.activation))
            previous = nxt
        if s.output_activation == "tanh":
            layers.append(nn.Tanh())
        elif s.output_activation != "none":
            raise ValueError(f"unknown output_activation {s.output_activation!r}; use 'none' or 'tanh'")
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VQVAE(nn.Module):
    """Encoder -> quantizer (channels-last tokens) -> decoder."""

    def __init__(self, in_channels: int, quantizer: Quantizer, settings: ModelSettings):
        super().__init__()
        if settings.downsamples < 1:
            raise ValueError(f"model setting downsamples must be >= 1, got {settings.downsamples}")
        if tuple(float(v) for v in settings.pixel_range) not in PIXEL_RANGES:
            raise ValueError(f"model setting pixel_range must be [-1, 1] or [0, 1], got {settings.pixel_range}")
        self.signed = float(settings.pixel_range[0]) == -1.0
        self.encoder = Encoder(in_channels, quantizer.code_dim, settings)
        self.quantizer = quantizer
        self.decoder = Decoder(in_channels, quantizer.code_dim, settings)

    def images_in(self, images01: torch.Tensor) -> torch.Tensor:
        """[0, 1] images in the range the model is trained on."""
        return images01 * 2.0 - 1.0 if self.signed else images01

    def images_out(self, output: torch.Tensor) -> torch.Tensor:
        """The model's output as [0, 1] images (clamped)."""
        return ((output + 1.0) / 2.0 if self.signed else output).clamp(0.0, 1.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last tokens (B, H, W, D) before quantization."""
        return self.encoder(x).permute(0, 2, 3, 1)

    def quantize(self, x: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(self.encode(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q.permute(0, 3, 1, 2))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        out = self.quantize(x)
        return self.decode(out.z_q), out
