"""Image classifiers with a vector-quantization bottleneck ("Straightening Out the STE", Tables 1, 2, 10).

The interface is ``VQVAE``'s: ``quantizer``, ``encode(x)`` (channels-last tokens
(B, H, W, D) before quantization), ``quantize(x)`` and ``forward(x) -> (logits,
QuantizerOutput)``. Images arrive in [-1, 1], shape (B, C, H, W); no ImageNet
normalisation is applied and no weights are ever downloaded (torchvision models are
built with ``weights=None``, i.e. randomly initialised).

Where the bottleneck sits (Huh et al., 2023, Appendix A.3 "Classification", the
paragraphs "AlexNet / ResNet18 / ViT quantization"):

- ``alexnet`` (torchvision ``alexnet``): "we quantize the features after the
  convolutional layers and before the fully-connected layers", i.e. the output of
  ``features`` (256 x 6 x 6 at 224 x 224), one token per position; then avgpool and
  the fully-connected classifier.
- ``resnet18`` (torchvision ``resnet18``): "we quantize after the second macroblock.
  This is after layer2 in the TorchVision repository", roughly the network's halfway
  point (128 x 28 x 28 at 224 x 224); then layer3, layer4, avgpool, fc.
- ``vit_tiny`` (torchvision ``VisionTransformer`` with ViT-Tiny's Table 7 shape: patch
  16, 12 blocks, 3 heads, width 192, MLP 768; 224 x 224 only): "we tokenize
  nonoverlapping patches of size 16x16 resulting in 14 x 14 = 196 input tokens. These
  individual tokens are quantized ... after the 6th transformer block". The 196 patch
  tokens are quantized; the class token, which is no patch and not among the 196,
  passes through unquantized (our reading), and classification uses it as usual.
- ``small_cnn`` (CPU-sized, not from the paper; vqtorch's MNIST example has the same
  shape): conv 3x3 (width) -> conv 3x3 stride 2 (2 width) -> 1x1 conv to D, quantized
  per position (4 x 4 tokens for 8 x 8 digits, 16 x 16 for 32 x 32 RGB); head conv 3x3
  (2 width) -> global average pool -> linear to logits.

For the paper backbones the quantizer's code dimension D need not equal the
backbone's channels C at the bottleneck (256 / 128 / 192): when it differs, a linear
map per token (a 1x1 convolution) takes C to D before quantization and another takes
D back to C after it; when D == C both are the identity, as in the paper's layouts.
(Table 1 reports codes of size 512 for ResNet18 without saying how they meet layer2's
128 channels; the projection is our choice.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..quantizers import Quantizer, QuantizerOutput

BACKBONES = ("small_cnn", "alexnet", "resnet18", "vit_tiny")
#: transformer blocks before the bottleneck in vit_tiny ("after the 6th transformer block")
VIT_SPLIT = 6


@dataclass
class ClassifierSettings:
    # small_cnn | alexnet | resnet18 | vit_tiny (the last three: the paper's ImageNet100 networks)
    backbone: str = "small_cnn"
    # small_cnn only: channels of the first conv (the second conv and the head use 2 * width).
    width: int = 32


class VQClassifier(nn.Module):
    """Backbone front -> quantizer (channels-last tokens) -> backbone back -> logits."""

    def __init__(self, in_channels: int, num_classes: int, quantizer: Quantizer, settings: ClassifierSettings):
        super().__init__()
        if settings.backbone not in BACKBONES:
            raise ValueError(f"classifier setting backbone: {settings.backbone!r} is not one of {list(BACKBONES)}")
        if settings.width < 1:
            raise ValueError(f"classifier setting width must be >= 1, got {settings.width}")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        self.settings = settings
        self.quantizer = quantizer
        d = quantizer.code_dim
        build = {"small_cnn": _small_cnn, "alexnet": _alexnet, "resnet18": _resnet18, "vit_tiny": _vit_tiny}
        self.front, self.back, channels = build[settings.backbone](in_channels, num_classes, d, settings.width)
        # Per-token maps between the backbone's C channels and the code dimension D (identity if equal).
        self.project_in = nn.Identity() if channels == d else nn.Linear(channels, d)
        self.project_out = nn.Identity() if channels == d else nn.Linear(d, channels)

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(channels-last tokens (B, H, W, D) before quantization, ViT's class token or None)."""
        if isinstance(self.front, _ViTFront):
            tokens, cls = self.front(x)
        else:
            tokens, cls = self.front(x).permute(0, 2, 3, 1), None
        return self.project_in(tokens), cls

    @staticmethod
    def images_in(images01: torch.Tensor) -> torch.Tensor:
        """[0, 1] images in the [-1, 1] range the backbones are trained on."""
        return images01 * 2.0 - 1.0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last tokens (B, H, W, D) before quantization."""
        return self._tokens(x)[0]

    def quantize(self, x: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(self.encode(x))

    def classify(self, z_q: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from quantized channels-last tokens (and, for vit_tiny, the class token)."""
        tokens = self.project_out(z_q)
        if isinstance(self.back, _ViTBack):
            return self.back(tokens, cls)
        return self.back(tokens.permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        tokens, cls = self._tokens(x)
        out = self.quantizer(tokens)
        return self.classify(out.z_q, cls), out


def _replace_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if in_channels == conv.in_channels:
        return conv
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     bias=conv.bias is not None)


def _small_cnn(in_channels: int, num_classes: int, d: int, width: int):
    front = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, d, 1),
    )
    back = nn.Sequential(
        nn.Conv2d(d, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
    return front, back, d  # the 1x1 conv already ends at D: no extra projection


def _alexnet(in_channels: int, num_classes: int, d: int, width: int):
    from torchvision.models import alexnet

    net = alexnet(weights=None, num_classes=num_classes)
    net.features[0] = _replace_first_conv(net.features[0], in_channels)
    back = nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier)
    return net.features, back, 256


def _resnet18(in_channels: int, num_classes: int, d: int, width: int):
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = _replace_first_conv(net.conv1, in_channels)
    front = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
    back = nn.Sequential(net.layer3, net.layer4, net.avgpool, nn.Flatten(1), net.fc)
    return front, back, 128


def _vit_tiny(in_channels: int, num_classes: int, d: int, width: int):
    from torchvision.models import VisionTransformer

    net = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192,
                            mlp_dim=768, num_classes=num_classes)
    net.conv_proj = _replace_first_conv(net.conv_proj, in_channels)
    return _ViTFront(net), _ViTBack(net), net.hidden_dim


class _ViTFront(nn.Module):
    """Patch embedding, class token, position embedding and the first VIT_SPLIT blocks."""

    def __init__(self, net):
        super().__init__()
        self.conv_proj = net.conv_proj
        self.class_token = net.class_token
        self.pos_embedding = net.encoder.pos_embedding
        self.dropout = net.encoder.dropout
        self.blocks = net.encoder.layers[:VIT_SPLIT]
        self.image_size, self.patch_size = net.image_size, net.patch_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"vit_tiny expects {self.image_size}x{self.image_size} images, got {h}x{w}")
        grid = self.conv_proj(x)  # (B, hidden, 14, 14)
        gh, gw = grid.shape[2:]
        x = grid.flatten(2).transpose(1, 2)  # (B, 196, hidden), row-major like torchvision
        x = torch.cat([self.class_token.expand(b, -1, -1), x], dim=1)
        x = self.blocks(self.dropout(x + self.pos_embedding))
        return x[:, 1:].reshape(b, gh, gw, -1), x[:, :1]


class _ViTBack(nn.Module):
    """The remaining blocks, the final layer norm and the head on the class token."""

    def __init__(self, net):
        super().__init__()
        self.blocks = net.encoder.layers[VIT_SPLIT:]
        self.ln = net.encoder.ln
        self.heads = net.heads

    def forward(self, tokens: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        x = torch.cat([cls, tokens.flatten(1, 2)], dim=1)
        return self.heads(self.ln(self.blocks(x))[:, 0])
