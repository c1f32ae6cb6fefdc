"""Defining properties of SimVQ (vqrepro/quantizers/simvq.py).

The cross-check against vector-quantize-pytorch is skipped when that test extra is not
installed; every other test needs torch only.
"""
import math

import pytest
import torch

from vqrepro.quantizers.simvq import SimVQQuantizer
from conftest import make


def test_simvq_init_frozen_gaussian_codebook_and_linear_map_with_bias():
    torch.manual_seed(0)
    k, d = 8192, 64
    q = make(SimVQQuantizer, k, d)
    c = q.frozen_codebook
    assert not c.requires_grad and all(p is not c for p in q.parameters())
    assert abs(c.mean().item()) < 0.01
    assert c.std().item() == pytest.approx(d**-0.5, rel=0.01)  # N(0, D^-1/2)
    assert q.transform.weight.shape == (d, d) and q.transform.bias is not None
    bound = 1 / math.sqrt(d)  # PyTorch's default Linear init, as the SimVQ code
    assert q.transform.weight.abs().max() <= bound and q.transform.bias.abs().max() <= bound
    assert make(SimVQQuantizer, 8, 4, bias=False).transform.bias is None
    assert "frozen_codebook" in q.state_dict()


def test_simvq_looks_up_the_nearest_transformed_code_and_is_straight_through():
    torch.manual_seed(0)
    q = make(SimVQQuantizer, 32, 6)
    z = torch.randn(4, 5, 6, requires_grad=True)
    out = q(z)
    codes = (q.frozen_codebook @ q.transform.weight.t() + q.transform.bias).detach()
    expected = torch.cdist(z.detach().reshape(-1, 6), codes).argmin(1)
    assert torch.equal(out.indices.reshape(-1), expected)
    torch.testing.assert_close(out.z_q.reshape(-1, 6), codes[expected])
    upstream = torch.randn_like(z)
    (g,) = torch.autograd.grad((out.z_q * upstream).sum(), z)
    torch.testing.assert_close(g, upstream, rtol=0, atol=0)


def test_simvq_codebook_gets_no_gradient_w_does_and_every_code_moves():
    torch.manual_seed(0)
    k, d = 64, 8
    q = make(SimVQQuantizer, k, d)
    # Tokens right next to two codes: the batch selects only those two.
    with torch.no_grad():
        codes = q.codes()
    z = codes[[3, 17]].repeat_interleave(10, 0) + 1e-3 * torch.randn(20, d)
    out = q(z)
    assert set(out.indices.tolist()) == {3, 17}
    out.losses["codebook"].backward()
    assert q.frozen_codebook.grad is None and not q.frozen_codebook.requires_grad
    assert q.transform.weight.grad is not None and q.transform.weight.grad.abs().sum() > 0
    frozen_before, codes_before = q.frozen_codebook.clone(), q.codes().detach().clone()
    torch.optim.SGD(q.parameters(), lr=0.1).step()
    assert torch.equal(q.frozen_codebook, frozen_before)  # C never changes
    moved = (q.codes().detach() - codes_before).norm(dim=1)
    assert (moved > 0).all(), "a gradient from two selected codes moves all K codes through W"


def test_simvq_losses_split_encoder_and_codebook_sides():
    torch.manual_seed(0)
    q = make(SimVQQuantizer, 16, 4)
    z = torch.randn(50, 4, requires_grad=True)
    out = q(z)
    distance = (z.detach() - q.codes().detach()[out.indices]).pow(2).mean()
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    torch.testing.assert_close(out.losses["codebook"], distance)
    out.losses["commit"].backward()
    assert q.transform.weight.grad is None  # the commitment term moves only the encoder
    assert z.grad is not None
    z.grad = None
    q(z).losses["codebook"].backward()
    assert z.grad is None and q.transform.weight.grad is not None  # the codebook term moves only W


def test_simvq_lookup_decodes_with_the_transformed_codes():
    torch.manual_seed(0)
    q = make(SimVQQuantizer, 32, 4)
    q.eval()
    z = torch.randn(2, 3, 3, 4)
    out = q(z)
    torch.testing.assert_close(q.lookup(out.indices), out.z_q)
    # The public code's decode-from-indices uses the raw frozen codebook: a different vector.
    assert not torch.allclose(q.frozen_codebook[out.indices], out.z_q)


def test_simvq_matches_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    k, d = 128, 16
    ours = make(SimVQQuantizer, k, d, bias=False)
    theirs = vqp.SimVQ(dim=d, codebook_size=k, rotation_trick=False)
    with torch.no_grad():
        theirs.frozen_codebook.copy_(ours.frozen_codebook)
        theirs.code_transform.weight.copy_(ours.transform.weight)
    z = torch.randn(4, 50, d)
    z_ours, z_theirs = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out = ours(z_ours)
    q, idx, loss = theirs(z_theirs)
    assert torch.equal(out.indices, idx)
    torch.testing.assert_close(out.z_q, q)
    # Their one loss: ||sg(z) - z_q||^2 + 0.25 ||z - sg(z_q)||^2 = our codebook + commit terms.
    total = out.losses["commit"] + out.losses["codebook"]
    torch.testing.assert_close(total, loss)
    upstream = torch.randn_like(z)
    g_ours = torch.autograd.grad((out.z_q * upstream).sum() + total, (z_ours, ours.transform.weight))
    g_theirs = torch.autograd.grad((q * upstream).sum() + loss, (z_theirs, theirs.code_transform.weight))
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours.lookup(idx), theirs.indices_to_codes(idx))
