"""The defining properties of each quantizer and of the shared nearest-code search."""
import pytest
import torch

from vqrepro.quantizers import REGISTRY, build_quantizer, nearest_code


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


def test_vq_forward_is_nearest_code_and_gradient_is_straight_through():
    torch.manual_seed(0)
    q = build_quantizer({"method": "vq"}, 16, 4)
    z = torch.randn(3, 5, 4, requires_grad=True)
    out = q(z)
    codes = q.codebook.detach()
    expected = codes[brute_force(z.detach().reshape(-1, 4), codes)].reshape(3, 5, 4)
    torch.testing.assert_close(out.z_q, expected)
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)  # identity gradient
    assert q.codebook.grad is None  # z_q's task gradient never reaches the codebook


def test_vq_losses_split_encoder_and_codebook_sides():
    torch.manual_seed(0)
    q = build_quantizer({"method": "vq", "commit_weight": 0.25, "codebook_weight": 1.0}, 8, 4)
    z = torch.randn(32, 4, requires_grad=True)
    out = q(z)
    distance = (z.detach() - q.codebook.detach()[out.indices]).pow(2).mean()
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    torch.testing.assert_close(out.losses["codebook"], distance)
    out.losses["commit"].backward()
    assert q.codebook.grad is None  # commitment moves only the encoder
    z.grad = None
    q(z).losses["codebook"].backward()
    assert z.grad is None and q.codebook.grad is not None  # codebook loss moves only the codes


def test_ema_with_zero_decay_sets_codes_to_assigned_means():
    torch.manual_seed(0)
    q = build_quantizer({"method": "ema", "decay": 0.0, "epsilon": 1e-12}, 6, 3)
    z = torch.randn(300, 3)
    indices, _ = nearest_code(z, q.codebook.clone())
    q.train()
    q(z)
    for code in indices.unique():
        torch.testing.assert_close(q.codebook[code], z[indices == code].mean(0), rtol=1e-5, atol=1e-5)


def test_ema_moves_codes_by_the_decay_rule_and_has_no_gradient():
    torch.manual_seed(0)
    q = build_quantizer({"method": "ema", "decay": 0.9, "epsilon": 1e-5}, 4, 2)
    assert not any(p.requires_grad for p in q.parameters())
    z = torch.randn(50, 2)
    before = q.codebook.clone()
    q.eval()
    q(z)
    torch.testing.assert_close(q.codebook, before)  # evaluation never updates the codebook
    q.train()
    out = q(z)
    assert set(out.losses) == {"commit"}
    assert not torch.allclose(q.codebook, before)


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_reports_usage_and_round_trips_a_state_dict(method):
    torch.manual_seed(0)
    q = build_quantizer({"method": method}, 8, 4)
    out = q(torch.randn(2, 3, 3, 4))
    assert out.indices.shape == (2, 3, 3)
    assert 0.0 < out.stats["batch_usage"] <= 1.0 and out.stats["batch_perplexity"] >= 1.0
    clone = build_quantizer({"method": method}, 8, 4)
    clone.load_state_dict(q.state_dict())
    torch.testing.assert_close(clone.codes(), q.codes())


def test_unknown_method_and_setting_are_rejected():
    with pytest.raises(KeyError, match="unknown quantizer method"):
        build_quantizer({"method": "nope"}, 8, 4)
    with pytest.raises(KeyError, match="beta"):
        build_quantizer({"method": "vq", "beta": 0.3}, 8, 4)


def test_ema_assigned_sums_match_index_add_in_every_chunking():
    from vqrepro.quantizers.ema import assigned_sums

    torch.manual_seed(0)
    z, indices = torch.randn(5000, 3), torch.randint(0, 4096, (5000,))
    expected = torch.zeros(4096, 3).index_add_(0, indices, z)
    torch.testing.assert_close(assigned_sums(z, indices, 4096), expected)
