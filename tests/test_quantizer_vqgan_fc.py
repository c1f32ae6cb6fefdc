"""Defining properties of VQGAN-FC (vqrepro/quantizers/fc.py)."""
import pytest
import torch
import torch.nn.functional as F

from vqrepro.quantizers.fc import VQGANFCQuantizer
from conftest import make


def test_fc_picks_the_largest_cosine_similarity_in_the_projected_space():
    torch.manual_seed(0)
    k, d, lookup = 64, 16, 3
    q = make(VQGANFCQuantizer, k, d, lookup_dim=lookup)
    z = torch.randn(10, 7, d)
    out = q(z)
    with torch.no_grad():
        projected = z.reshape(-1, d) @ q.project_in.weight.t() + q.project_in.bias
        cosine = F.cosine_similarity(projected[:, None, :], q.codebook[None, :, :], dim=-1)
    assert torch.equal(out.indices.reshape(-1), cosine.argmax(1))
    # A token's norm never matters in the lookup space: scaling z scales P_in z - b only.
    assert q.lookup_dim == lookup and q.codebook.shape == (k, lookup)


def test_fc_tokens_and_codes_are_unit_vectors_and_output_has_dimension_d():
    torch.manual_seed(0)
    k, d = 32, 16
    q = make(VQGANFCQuantizer, k, d, lookup_dim=4)
    z = 5 * torch.randn(3, 4, 4, d)
    u = q.lookup_tokens(z.reshape(-1, d))
    assert u.shape == (48, 4)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(48))
    torch.testing.assert_close(q.lookup_codes().norm(dim=1), torch.ones(k))
    out = q(z)
    assert out.z_q.shape == z.shape  # projected back up to D for the decoder
    assert q.codes().shape == (k, d)
    # lookup_dim 0 means the code dimension; projections stay unless project: false.
    q0 = make(VQGANFCQuantizer, k, d)
    assert q0.lookup_dim == d and isinstance(q0.project_in, torch.nn.Linear)
    bare = make(VQGANFCQuantizer, k, d, project=False)
    unit_out = bare(z).z_q
    torch.testing.assert_close(unit_out.norm(dim=-1), torch.ones(z.shape[:-1]))
    with pytest.raises(ValueError, match="project: false"):
        make(VQGANFCQuantizer, k, d, lookup_dim=4, project=False)
    with pytest.raises(ValueError, match="lookup_dim"):
        make(VQGANFCQuantizer, k, d, lookup_dim=-1)


def test_fc_is_straight_through_in_the_lookup_space_and_lookup_equals_forward():
    torch.manual_seed(0)
    k, d = 32, 8
    q = make(VQGANFCQuantizer, k, d, lookup_dim=3)
    z = torch.randn(40, d, requires_grad=True)
    out = q(z)
    upstream = torch.randn_like(out.z_q)
    (g,) = torch.autograd.grad((out.z_q * upstream).sum(), z)
    # As if quantization were the identity on u: gradient of P_out(normalise(P_in z)).
    (expected,) = torch.autograd.grad((q.project_out(q.lookup_tokens(z)) * upstream).sum(), z)
    torch.testing.assert_close(g, expected)
    torch.testing.assert_close(q.lookup(out.indices), out.z_q.detach())


def test_fc_losses_live_in_the_lookup_space_and_split_sides():
    torch.manual_seed(0)
    q = make(VQGANFCQuantizer, 16, 8, lookup_dim=3)
    z = torch.randn(50, 8, requires_grad=True)
    out = q(z)
    u = q.lookup_tokens(z).detach()
    distance = (u - q.lookup_codes().detach()[out.indices]).pow(2).mean()
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    torch.testing.assert_close(out.losses["codebook"], distance)
    out.losses["codebook"].backward()
    assert z.grad is None and q.project_in.weight.grad is None and q.codebook.grad is not None
    q.zero_grad()
    q(z).losses["commit"].backward()
    assert q.codebook.grad is None and z.grad is not None and q.project_in.weight.grad is not None
