"""Defining properties of Gumbel-softmax VQ (vqrepro/quantizers/gumbel.py)."""
import pytest
import torch

from vqrepro.quantizers.gumbel import GumbelQuantizer, cosine_ramp
from conftest import make


def test_gumbel_soft_code_is_a_convex_combination_of_codes():
    torch.manual_seed(0)
    q = make(GumbelQuantizer, 6, 6)
    q.codebook.data = torch.eye(6)
    q.train()
    out = q(torch.randn(400, 6))
    w = out.z_q.detach()
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(400))
    assert (w.max(1).values < 0.99).float().mean() > 0.9  # hard=False: genuinely soft at tau = 1
    assert torch.equal(out.indices, w.argmax(1))
    q2 = make(GumbelQuantizer, 6, 6, hard=True)
    q2.codebook.data = torch.eye(6)
    q2.train()
    out = q2(torch.randn(400, 6))
    torch.testing.assert_close(out.z_q.detach(), torch.eye(6)[out.indices])  # straight-through: one-hot forward


def test_gumbel_draws_follow_the_softmax_of_the_logits():
    torch.manual_seed(0)
    q = make(GumbelQuantizer, 4, 2)
    q.train()
    z = torch.tensor([[0.5, -1.0]])
    expected = torch.softmax(q.logits(z), 1)[0].detach().double()
    n = 40_000
    with torch.no_grad():
        counts = torch.bincount(q(z.expand(n, 2)).indices, minlength=4).double()
    chi2 = ((counts - n * expected) ** 2 / (n * expected)).sum().item()
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001


def test_gumbel_evaluation_is_the_argmax_of_the_logits_with_a_hard_lookup():
    torch.manual_seed(0)
    q = make(GumbelQuantizer, 16, 4)
    q.eval()
    z = torch.randn(200, 4)
    out = q(z)
    expected = q.logits(z).argmax(1)
    assert torch.equal(out.indices, expected)
    torch.testing.assert_close(out.z_q, q.codebook.detach()[expected])
    assert torch.equal(q(z).indices, expected)


def test_gumbel_schedules_and_kl_to_the_uniform_prior():
    q = make(GumbelQuantizer, 8, 2, temperature_anneal_steps=100, kl_ramp_steps=10, kl_weight=1e-3)
    assert q.temperature(0) == 1.0 and q.temperature(100) == pytest.approx(1 / 16)
    assert q.temperature(10**6) == pytest.approx(1 / 16)
    assert q.temperature(50) == pytest.approx(cosine_ramp(50, 100, 1.0, 1 / 16))
    assert 1 / 16 < q.temperature(50) < 1.0
    assert q.kl_weight(0) == 0.0 and q.kl_weight(10) == pytest.approx(1e-3) and q.kl_weight(99) == pytest.approx(1e-3)
    torch.manual_seed(0)
    z = torch.randn(30, 2, requires_grad=True)
    q.begin_step(20, 0)
    q.train()
    out = q(z)
    p = torch.softmax(q.logits(z.detach()), 1)
    kl = (p * (p * 8).log()).sum(1).mean()
    torch.testing.assert_close(out.losses["kl"].detach(), 1e-3 * kl)
    assert out.stats["temperature"] == pytest.approx(q.temperature(20))
    (out.z_q.sum() + out.losses["kl"]).backward()
    assert z.grad.abs().sum() > 0 and q.proj.weight.grad.abs().sum() > 0 and q.codebook.grad.abs().sum() > 0
