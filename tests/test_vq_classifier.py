"""VQClassifier: shapes, gradient paths, a tiny training run, and the paper backbones' bottlenecks.

The paper-scale backbones (alexnet, resnet18, vit_tiny) are randomly initialised
(weights=None, nothing downloaded) and only run one forward on two 224x224 images;
the three together take a few seconds on a CPU.
"""
import pytest
import torch
import torch.nn.functional as F

from vqrepro.models import ClassifierSettings, VQClassifier
from vqrepro.quantizers import build_quantizer


def small(in_channels, classes=3, k=16, d=8, width=8, **vq):
    quantizer = build_quantizer({"method": "vq", **vq}, k, d)
    return VQClassifier(in_channels, classes, quantizer, ClassifierSettings(backbone="small_cnn", width=width))


@pytest.mark.parametrize("channels,side,tokens", [(1, 8, 4), (3, 32, 16)])
def test_small_cnn_shapes(channels, side, tokens):
    torch.manual_seed(0)
    model = small(channels)
    x = torch.rand(5, channels, side, side) * 2 - 1
    logits, out = model(x)
    assert logits.shape == (5, 3)
    assert model.encode(x).shape == (5, tokens, tokens, 8)
    assert out.z_q.shape == (5, tokens, tokens, 8)
    assert out.indices.shape == (5, tokens, tokens)
    assert model.quantize(x).indices.shape == (5, tokens, tokens)
    assert set(out.losses) == {"commit", "codebook"}


def test_gradient_reaches_encoder_and_codebook():
    torch.manual_seed(0)
    model = small(1)
    logits, out = model(torch.rand(4, 1, 8, 8) * 2 - 1)
    (F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])) + sum(out.losses.values())).backward()
    first_conv = model.front[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0  # task grad via STE
    assert model.quantizer.codebook.grad is not None and model.quantizer.codebook.grad.abs().sum() > 0
    head_conv = model.back[0]
    assert head_conv.weight.grad.abs().sum() > 0


def test_a_few_adam_steps_reduce_cross_entropy_on_a_separable_set():
    torch.manual_seed(0)
    # Two classes of 8x8 digits: bright left half vs bright right half, plus noise.
    labels = torch.arange(32) % 2
    images = -torch.ones(32, 1, 8, 8)
    images[labels == 0, :, :, :4] = 1.0
    images[labels == 1, :, :, 4:] = 1.0
    images = (images + 0.2 * torch.randn_like(images)).clamp(-1, 1)
    model = small(1, classes=2, init="kmeans")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def cross_entropy():
        with torch.no_grad():
            model.eval()
            loss = F.cross_entropy(model(images)[0], labels).item()
            model.train()
        return loss

    model.quantizer.begin_step(0, 0)
    model(images)  # k-means initialisation on the first training batch
    before = cross_entropy()
    for step in range(40):
        model.quantizer.begin_step(step, 0)
        logits, out = model(images)
        loss = F.cross_entropy(logits, labels) + sum(out.losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.quantizer.on_step(step)
    after = cross_entropy()
    assert after < 0.25 * before, (before, after)  # seeds 0-4 reach <= 0.02 from 0.69


def test_unknown_backbone_is_rejected():
    q = build_quantizer({"method": "vq"}, 4, 8)
    with pytest.raises(ValueError, match="backbone"):
        VQClassifier(1, 2, q, ClassifierSettings(backbone="vgg"))


# Paper-scale backbones, randomly initialised: (backbone, code dim, token grid at 224x224).
PAPER = [
    ("alexnet", 256, 6),   # after the conv layers, before the fully-connected ones
    ("resnet18", 128, 28),  # after layer2
    ("vit_tiny", 192, 14),  # the 196 patch tokens after the 6th of 12 blocks
]


@pytest.mark.parametrize("backbone,d,grid", PAPER)
def test_paper_backbones_construct_and_run_one_forward(backbone, d, grid):
    torch.manual_seed(0)
    model = VQClassifier(3, 100, build_quantizer({"method": "vq"}, 32, d), ClassifierSettings(backbone=backbone))
    assert isinstance(model.project_in, torch.nn.Identity)  # D equals the bottleneck's channels
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        logits, out = model(x)
    assert logits.shape == (2, 100) and torch.isfinite(logits).all()
    assert out.z_q.shape == (2, grid, grid, d)
    assert out.indices.shape == (2, grid, grid)


def test_code_dimension_other_than_the_bottleneck_channels_gets_a_projection():
    torch.manual_seed(0)
    model = VQClassifier(1, 10, build_quantizer({"method": "vq"}, 16, 32), ClassifierSettings(backbone="resnet18"))
    x = torch.rand(2, 1, 64, 64) * 2 - 1  # grey-scale input: the first conv takes 1 channel
    logits, out = model(x)
    assert logits.shape == (2, 10)
    assert out.z_q.shape == (2, 8, 8, 32)
