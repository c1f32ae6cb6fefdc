"""Defining properties of TransVQ ("Beyond Stationarity", Sec. 3.4; vqrepro/quantizers/transvq.py)."""
import pytest
import torch
import torch.nn.functional as F

from vqrepro.quantizers.transvq import LinearAttention, TransVQ, TransVQSettings


def transvq(k=12, d=4, **settings):
    return TransVQ(k, d, TransVQSettings(**settings))


def test_linear_attention_matches_the_quadratic_formula():
    torch.manual_seed(0)
    attn = LinearAttention(8, heads=2)
    x = torch.randn(1, 7, 8)
    phi = lambda t: F.elu(t) + 1
    q, k, v = (attn.to_q(x), attn.to_k(x), attn.to_v(x))
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        scores = phi(q[0, :, sl]) @ phi(k[0, :, sl]).t()  # (L, L), unnormalised
        heads.append((scores @ v[0, :, sl]) / scores.sum(1, keepdim=True))
    expected = attn.to_out(torch.cat(heads, dim=1))[None]
    torch.testing.assert_close(attn(x), expected, rtol=1e-4, atol=1e-5)


def test_transvq_default_transform_is_the_papers_block():
    q = transvq(k=10, d=6)
    t = q.transform
    assert t.in_proj.weight.shape == (256, 6) and t.out_proj.weight.shape == (6, 256)
    assert t.positions.weight.shape == (10, 256)  # one learned position per code
    assert len(t.blocks) == 1 and t.blocks[0].attn.heads == 1
    assert t.blocks[0].mlp[0].weight.shape == (512, 256)  # MLP ratio 2


@pytest.mark.parametrize("transform", ["transformer", "mlp"])
def test_transvq_frozen_codebook_gets_no_gradient_and_the_transform_does(transform):
    torch.manual_seed(0)
    q = transvq(transform=transform)
    assert "frozen_codebook" in dict(q.named_buffers())
    assert all(not name.startswith("frozen") for name, _ in q.named_parameters())
    frozen = q.frozen_codebook.clone()
    z = torch.randn(30, 4, requires_grad=True)
    q.train()
    out = q(z)
    out.losses["codebook"].backward()
    assert z.grad is None  # the codebook side never moves the encoder
    assert not q.frozen_codebook.requires_grad and q.frozen_codebook.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.parameters())
    torch.optim.SGD(q.parameters(), lr=0.1).step()
    assert torch.equal(q.frozen_codebook, frozen)


@pytest.mark.parametrize("transform", ["transformer", "mlp"])
def test_transvq_one_step_moves_every_code(transform):
    """Non-stationary codebook: a batch that selects few codes still moves all of them."""
    torch.manual_seed(0)
    q = transvq(k=64, transform=transform)
    q.train()
    z = torch.randn(3, 4)
    out = q(z)
    assert out.indices.unique().numel() <= 3
    before = q.codes().detach().clone()
    out.losses["codebook"].backward()
    torch.optim.SGD(q.parameters(), lr=0.1).step()
    moved = (q.codes().detach() - before).norm(dim=1)
    assert (moved > 1e-6).all()


def test_transvq_forward_is_the_nearest_transformed_code_with_straight_through_and_paper_losses():
    torch.manual_seed(0)
    q = transvq()
    q.train()
    z = torch.randn(2, 5, 4, requires_grad=True)
    out = q(z)
    codes = q.transform(q.frozen_codebook).detach()
    flat = z.detach().reshape(-1, 4)
    expected = codes[torch.cdist(flat, codes).argmin(1)].reshape(2, 5, 4)
    torch.testing.assert_close(out.z_q, expected)
    distance = (flat - expected.reshape(-1, 4)).pow(2).mean()
    torch.testing.assert_close(out.losses["codebook"], distance)
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)
    assert all(p.grad is None for p in q.parameters())  # the task gradient stops at z_q


@pytest.mark.parametrize("transform", ["transformer", "mlp"])
def test_transvq_lookup_decodes_through_the_transform_in_evaluation(transform):
    torch.manual_seed(0)
    q = transvq(transform=transform)
    q.eval()
    z = torch.randn(3, 4, 4)
    with torch.no_grad():
        out = q(z)
        torch.testing.assert_close(q.lookup(out.indices), out.z_q)
        torch.testing.assert_close(q.lookup(out.indices), q.transform(q.frozen_codebook)[out.indices])
        assert q.codes() is q.codes()  # cached while nothing changes
    # and outside no_grad (recomputed, same values)
    torch.testing.assert_close(q.lookup(out.indices), out.z_q)


def test_transvq_eval_cache_follows_load_state_dict_and_in_place_updates():
    torch.manual_seed(0)
    q, other = transvq(), transvq()
    q.eval()
    with torch.no_grad():
        stale = q.codes().clone()
        q.load_state_dict(other.state_dict())
        torch.testing.assert_close(q.codes(), other.transform(other.frozen_codebook))
        assert not torch.allclose(q.codes(), stale)
        q.transform.out_proj.weight.mul_(2.0)  # e.g. an optimiser step taken in eval mode
        torch.testing.assert_close(q.codes(), q.transform(q.frozen_codebook))
        q.train()
        q.eval()
        torch.testing.assert_close(q.codes(), q.transform(q.frozen_codebook))


def test_transvq_state_dict_round_trip_keeps_the_frozen_codebook():
    torch.manual_seed(0)
    q = transvq()
    torch.manual_seed(1)
    clone = transvq()
    assert not torch.equal(clone.frozen_codebook, q.frozen_codebook)
    clone.load_state_dict(q.state_dict())
    assert torch.equal(clone.frozen_codebook, q.frozen_codebook)
    torch.testing.assert_close(clone.codes(), q.codes())


@pytest.mark.parametrize("bad", [{"transform": "linear"}, {"width": 10, "heads": 3}, {"depth": 0}])
def test_transvq_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        transvq(**bad)
