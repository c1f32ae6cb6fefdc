"""Defining properties of SQ-VAE (vqrepro/quantizers/sqvae.py)."""
import math

import pytest
import torch

from vqrepro.quantizers.sqvae import SQVAEQuantizer
from conftest import make


def sqvae_probs(q, z):
    d = torch.cdist(z, q.codebook.detach()).pow(2)
    return torch.softmax(-d / (2 * q.variance().detach()), dim=1)


def test_sqvae_draws_follow_the_softmax_of_scaled_distances():
    torch.manual_seed(0)
    q = make(SQVAEQuantizer, 5, 2, variance_init=2.0, variance_offset=0.0)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [-1.0, -1.0], [2.0, 2.0]]))
    z = torch.tensor([[0.3, 0.2]])
    expected = sqvae_probs(q, z)[0]
    assert expected.min() > 0.01  # every code has a real chance
    n = 40_000
    q.train()
    with torch.no_grad():
        counts = torch.bincount(q(z.expand(n, 2)).indices, minlength=5).double()
    chi2 = ((counts - n * expected.double()) ** 2 / (n * expected.double())).sum().item()
    assert chi2 < 18.47  # chi-square, 4 degrees of freedom, p = 0.001


def test_sqvae_is_the_nearest_code_in_evaluation_and_as_the_variance_vanishes():
    torch.manual_seed(0)
    q = make(SQVAEQuantizer, 16, 4)
    z = torch.randn(500, 4)
    nearest = torch.cdist(z, q.codebook.detach()).argmin(1)
    q.eval()
    out = q(z)
    assert torch.equal(out.indices, nearest)
    torch.testing.assert_close(out.z_q, q.codebook.detach()[nearest])
    assert torch.equal(q(z).indices, nearest)  # deterministic
    q.train()
    assert not torch.equal(q(z).indices, nearest)  # variance 21: draws are random
    q = make(SQVAEQuantizer, 16, 4, variance_init=1e-6, variance_offset=0.0)
    q.train()
    torch.manual_seed(0)
    q.codebook.data = torch.randn(16, 4)
    assert torch.equal(q(z).indices, torch.cdist(z, q.codebook.detach()).argmin(1))


def test_sqvae_relaxed_code_is_a_convex_combination_that_hardens_as_tau_vanishes():
    torch.manual_seed(0)
    q = make(SQVAEQuantizer, 4, 4, variance_init=1.0, variance_offset=0.0)
    q.codebook.data = torch.eye(4)  # z_q then equals the relaxed one-hot weights
    q.train()
    z = torch.randn(300, 4)
    out = q(z)  # step 0: tau = 1
    w = out.z_q.detach()
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(300))
    assert (w.max(1).values < 0.999).any()  # soft
    hard = make(SQVAEQuantizer, 4, 4, variance_init=1.0, variance_offset=0.0,
                temperature_start=1e-4, temperature_end=1e-4)
    hard.codebook.data = torch.eye(4)
    hard.train()
    out = hard(z)
    torch.testing.assert_close(out.z_q.detach(), torch.eye(4)[out.indices], atol=1e-4, rtol=0)


def test_sqvae_temperature_schedule_is_a_function_of_the_step():
    q = make(SQVAEQuantizer, 8, 2, temperature_start=1.0, temperature_end=0.01, temperature_anneal_steps=100)
    assert q.temperature(0) == pytest.approx(1.0)
    assert q.temperature(50) == pytest.approx(0.1)  # geometric: sqrt(1 * 0.01)
    assert q.temperature(100) == pytest.approx(0.01)
    assert q.temperature(10_000) == pytest.approx(0.01)
    q.begin_step(50, 0)
    q.train()
    assert q(torch.randn(3, 2)).stats["temperature"] == pytest.approx(0.1)
    # the defaults reproduce the official tau = exp(-1e-5 step) up to the anneal steps
    d = SQVAEQuantizer(8, 2, SQVAEQuantizer.Settings())
    for step in (0, 1234, 50_000, 100_000):
        assert d.temperature(step) == pytest.approx(math.exp(-1e-5 * step))


def test_sqvae_losses_are_the_latent_elbo_terms_and_train_every_parameter():
    torch.manual_seed(0)
    q = make(SQVAEQuantizer, 6, 3, latent_weight=1.0)
    q.train()
    z = torch.randn(50, 3, requires_grad=True)
    out = q(z)
    p = sqvae_probs(q, z.detach())
    kl = (p * (p * 6).log()).sum(1).mean()
    torch.testing.assert_close(out.losses["kl_discrete"].detach(), kl, rtol=1e-4, atol=1e-6)
    cont = ((z.detach() - out.z_q.detach()).pow(2).sum(1) / (2 * 21.0)).mean()
    torch.testing.assert_close(out.losses["kl_continuous"].detach(), cont, rtol=1e-4, atol=1e-6)
    (out.z_q.sum() + sum(out.losses.values())).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert q.codebook.grad.abs().sum() > 0 and q.log_variance.grad != 0
