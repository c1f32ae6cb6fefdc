"""What every quantizer shares: the nearest-code search, the registry, settings and the module surface.

Each method's defining properties are in tests/test_quantizer_<name>.py.
"""
from pathlib import Path

import pytest
import torch

from vqrepro.quantizers import REGISTRY, build_quantizer, nearest_code
from vqrepro.quantizers.fc import VQGANFCQuantizer
from vqrepro.quantizers.fsq import FSQQuantizer
from vqrepro.quantizers.gumbel import GumbelQuantizer
from vqrepro.quantizers.lfq import LFQQuantizer
from vqrepro.quantizers.simvq import SimVQQuantizer
from vqrepro.quantizers.sqvae import SQVAEQuantizer
from vqrepro.quantizers.vqvae2 import VQVAE2Quantizer
from conftest import make


def brute_force(z, codebook):
    return torch.cdist(z, codebook).argmin(dim=1)


@pytest.mark.parametrize("max_elements", [1, 7, 64, 2**22])
def test_chunked_search_matches_brute_force(max_elements):
    torch.manual_seed(0)
    z, codebook = torch.randn(200, 8), torch.randn(50, 8)
    indices, dist = nearest_code(z, codebook, max_elements=max_elements)
    assert torch.equal(indices, brute_force(z, codebook))
    torch.testing.assert_close(dist, (z - codebook[indices]).pow(2).sum(1), rtol=1e-4, atol=1e-4)


def test_cosine_search_ignores_norm():
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z = torch.tensor([[10.0, 1.0], [0.1, 3.0]])
    indices, _ = nearest_code(z, codebook, metric="cosine")
    assert indices.tolist() == [0, 1]


def test_unknown_method_and_setting_are_rejected():
    with pytest.raises(KeyError, match="unknown quantizer method"):
        build_quantizer({"method": "nope"}, 8, 4)
    with pytest.raises(KeyError, match="beta"):
        build_quantizer({"method": "vq", "beta": 0.3}, 8, 4)


CLASSES = {"sqvae": SQVAEQuantizer, "gumbel": GumbelQuantizer, "fsq": FSQQuantizer, "lfq": LFQQuantizer}


def test_registry_names():
    assert REGISTRY["simvq"] is SimVQQuantizer
    assert REGISTRY["vqgan_fc"] is VQGANFCQuantizer
    assert REGISTRY["vqvae2"] is VQVAE2Quantizer
    assert isinstance(build_quantizer({"method": "vqgan_fc", "lookup_dim": 3}, 8, 16), VQGANFCQuantizer)
    for name, cls in CLASSES.items():
        assert REGISTRY[name] is cls
    assert isinstance(build_quantizer({"method": "fsq", "levels": [8, 5, 5, 5]}, 1000, 16), FSQQuantizer)
    with pytest.raises(ValueError, match="'levels'"):
        build_quantizer({"method": "fsq"}, 100, 4)
    with pytest.raises(KeyError, match="temperature"):
        build_quantizer({"method": "sqvae", "temperature": 0.5}, 8, 4)


def test_every_registered_method_has_its_test_file():
    """Adding a method (README): its module, its line in REGISTRY and tests/test_quantizer_<name>.py."""
    missing = [name for name in REGISTRY if not (Path(__file__).parent / f"test_quantizer_{name}.py").is_file()]
    assert not missing, f"registered methods without tests/test_quantizer_<name>.py: {missing}"


@pytest.mark.parametrize("method,k,d", [("sqvae", 8, 4), ("gumbel", 8, 4), ("fsq", 1000, 4), ("fsq", 240, 6), ("lfq", 16, 4), ("lfq", 8, 3)])
def test_forward_shapes_state_dict_and_lookup(method, k, d):
    torch.manual_seed(0)
    cls = CLASSES[method]
    q = make(cls, k, d)
    for training in (True, False):
        q.train(training)
        out = q(torch.randn(2, 3, 3, d))
        assert out.z_q.shape == (2, 3, 3, d) and out.indices.shape == (2, 3, 3)
        assert out.indices.dtype == torch.long and 0 <= out.indices.min() and out.indices.max() < k
        assert all(torch.isfinite(v) for v in out.losses.values())
    clone = make(cls, k, d)
    clone.load_state_dict(q.state_dict())
    torch.testing.assert_close(clone.codes(), q.codes())
    q.eval()
    out = q(torch.randn(4, d))
    torch.testing.assert_close(q.lookup(out.indices), out.z_q.detach())  # evaluation decodes its own indices


@pytest.mark.parametrize("cls", [SimVQQuantizer, VQGANFCQuantizer, VQVAE2Quantizer])
def test_state_dict_round_trip_keeps_codes(cls):
    torch.manual_seed(0)
    q = make(cls, 16, 4)
    q.train()
    q(torch.randn(64, 4))
    clone = make(cls, 16, 4)
    clone.load_state_dict(q.state_dict())
    torch.testing.assert_close(clone.codes(), q.codes())
    idx = torch.randint(0, 16, (5,))
    torch.testing.assert_close(clone.lookup(idx), q.lookup(idx))


def test_settings_are_type_checked():
    with pytest.raises(TypeError, match="levels"):
        FSQQuantizer.settings_from({"levels": 5})
    with pytest.raises(ValueError, match="latent_weight"):
        make(SQVAEQuantizer, 8, 4, latent_weight=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        make(GumbelQuantizer, 8, 4, temperature_end=0.0)


def test_pixel_range_sets_what_the_model_is_fed_and_how_its_output_is_read():
    """[0, 1] (the NS-VQ code) feeds pixels unchanged into the Tanh decoder; [-1, 1] maps them; both read back to [0, 1]."""
    from vqrepro.models import VQVAE, ModelSettings
    from vqrepro.quantizers import build_quantizer

    def model(pixel_range):
        quantizer = build_quantizer({"method": "vq"}, 8, 4)
        return VQVAE(1, quantizer, ModelSettings(hidden_channels=8, residual_layers=1, residual_channels=4, downsamples=1,
                                                 output_activation="tanh", pixel_range=pixel_range))

    black_and_white = torch.tensor([0.0, 0.25, 1.0])
    unit, signed = model([0, 1]), model((-1.0, 1.0))
    assert torch.equal(unit.images_in(black_and_white), black_and_white)
    assert torch.equal(signed.images_in(black_and_white), torch.tensor([-1.0, -0.5, 1.0]))
    # MNIST's black background: at Tanh's centre in [0, 1], at its saturated end in [-1, 1]
    assert torch.equal(unit.images_out(torch.tensor([-0.5, 0.0, 0.5])), torch.tensor([0.0, 0.0, 0.5]))
    assert torch.equal(signed.images_out(torch.tensor([-1.0, 0.0, 1.0])), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="pixel_range"):
        model([0, 255])
