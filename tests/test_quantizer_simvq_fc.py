"""Defining properties of SimVQ, VQGAN-FC and the NS-VQ paper's "VQVAE2" quantizer.

The cross-checks against vector-quantize-pytorch (its SimVQ and its EMA VectorQuantize)
are skipped when that test extra is not installed; every other test needs torch only.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from vqrepro.quantizers import REGISTRY, build_quantizer
from vqrepro.quantizers.ema import EMAQuantizer
from vqrepro.quantizers.fc import VQGANFCQuantizer
from vqrepro.quantizers.simvq import SimVQQuantizer
from vqrepro.quantizers.vqvae2 import VQVAE2Quantizer, kaiming_kd_init


def make(cls, k, d, **settings):
    return cls(k, d, cls.settings_from(settings))


def test_registry_names():
    assert REGISTRY["simvq"] is SimVQQuantizer
    assert REGISTRY["vqgan_fc"] is VQGANFCQuantizer
    assert REGISTRY["vqvae2"] is VQVAE2Quantizer
    assert isinstance(build_quantizer({"method": "vqgan_fc", "lookup_dim": 3}, 8, 16), VQGANFCQuantizer)


# ------------------------------------------------------------------------------------------ SimVQ


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


# --------------------------------------------------------------------------------------- VQGAN-FC


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


# ----------------------------------------------------------------------------------------- VQVAE2


def test_vqvae2_init_matches_vector_quantize_pytorch_kaiming_uniform():
    k, d = 512, 8
    torch.manual_seed(3)
    ref = torch.empty(1, k, d)
    torch.nn.init.kaiming_uniform_(ref)  # what vector-quantize-pytorch's uniform_init does
    torch.manual_seed(3)
    torch.testing.assert_close(kaiming_kd_init(k, d), ref[0], rtol=0, atol=0)
    q = make(VQVAE2Quantizer, k, d)
    assert q.codebook.abs().max() <= math.sqrt(6 / (k * d))
    torch.testing.assert_close(q.cluster_size, torch.ones(k))  # counts start at 1
    torch.testing.assert_close(q.embed_sum, q.codebook)  # sums at the codes: a consistent state
    assert not any(p.requires_grad for p in q.parameters())


def test_vqvae2_ema_update_and_dead_code_replacement_on_a_hand_example():
    q = make(VQVAE2Quantizer, 2, 1, decay=0.5, epsilon=1e-12, estimator="ste")
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [10.0]]))
        q.embed_sum.copy_(q.codebook)
    q.train()
    z = torch.tensor([[1.0], [3.0]])  # both nearest to code 0
    out = q(z)
    assert out.indices.tolist() == [0, 0]
    torch.testing.assert_close(out.z_q, torch.zeros(2, 1))  # the codes before this update
    # code 0: N = 0.5*1 + 0.5*2 = 1.5, m = 0.5*0 + 0.5*4 = 2, c = 2/1.5 (smoothing ~ none, eps 1e-12)
    torch.testing.assert_close(q.codebook[0], torch.tensor([4.0 / 3.0]))
    torch.testing.assert_close(q.cluster_size[0], torch.tensor(1.5))
    # code 1: N = 0.5 < 1 = threshold, so it is replaced by a batch token, N reset to 1, m = token.
    assert q.codebook[1].item() in (1.0, 3.0)
    torch.testing.assert_close(q.cluster_size[1], torch.tensor(1.0))
    torch.testing.assert_close(q.embed_sum[1], q.codebook[1])
    assert out.stats["replaced_codes"] == 1.0
    # Evaluation never changes the codebook.
    q.eval()
    before = q.codebook.clone()
    q(torch.tensor([[100.0]]))
    assert torch.equal(q.codebook, before)


def test_vqvae2_rotation_trick_keeps_the_forward_value_and_rotates_the_gradient():
    torch.manual_seed(0)
    q = make(VQVAE2Quantizer, 16, 4, dead_code_threshold=0.0)
    q.train()
    z = torch.randn(30, 4, requires_grad=True)
    before = q.codebook.clone()
    out = q(z)
    torch.testing.assert_close(out.z_q, before[out.indices], rtol=1e-5, atol=1e-6)
    upstream = torch.randn_like(z)
    (g,) = torch.autograd.grad((out.z_q * upstream).sum(), z)
    assert not torch.allclose(g, upstream)  # not the identity (straight-through) gradient
    # The rotation-and-rescale is linear in z: gradient = (|z_q| / |z|) R^T upstream, R orthogonal.
    scale = before[out.indices].norm(dim=1) / z.detach().norm(dim=1)
    torch.testing.assert_close(g.norm(dim=1), scale * upstream.norm(dim=1), rtol=1e-4, atol=1e-6)


def test_vqvae2_with_the_vqvae2_paper_settings_follows_the_ema_trajectory():
    """init normal, no replacement, STE: the codebook evolves exactly as ``ema``'s."""
    torch.manual_seed(0)
    k, d = 32, 4
    preset = {"init": "normal", "dead_code_threshold": 0.0, "estimator": "ste", "decay": 0.99}
    ours = make(VQVAE2Quantizer, k, d, **preset)
    ema = make(EMAQuantizer, k, d, decay=0.99)
    ema.load_state_dict(ours.state_dict())
    ours.train()
    ema.train()
    for _ in range(4):
        z = torch.randn(200, d)
        a, b = ours(z), ema(z)
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(ours.codebook, ema.codebook)
        torch.testing.assert_close(ours.cluster_size, ema.cluster_size)
    ours.eval()
    ema.eval()
    z = torch.randn(50, d)
    torch.testing.assert_close(ours(z).z_q, ema(z).z_q)


@pytest.mark.parametrize("k, d, decay", [(64, 8, 0.9995), (256, 16, 0.8)])
def test_vqvae2_matches_vector_quantize_pytorch_as_the_ns_vq_code_configures_it(k, d, decay):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(k + d)
    # NS_Trans_VQ_CelebA/models/vq_vae.py, vq_mod "ema"; everything else at the library's defaults.
    theirs = vqp.VectorQuantize(dim=d, codebook_size=k, decay=decay, commitment_weight=0.25,
                                threshold_ema_dead_code=1, manual_ema_update=False)
    ours = make(VQVAE2Quantizer, k, d, decay=decay)
    with torch.no_grad():
        ours.codebook.copy_(theirs._codebook.embed[0])
        ours.embed_sum.copy_(theirs._codebook.embed_avg[0])
        ours.cluster_size.copy_(theirs._codebook.cluster_size[0])
    ours.train()
    theirs.train()
    centres = torch.randn(k // 4, d) * 0.05
    replaced = 0.0
    for step in range(6):
        # Tokens around a quarter of the codes' scale, so some codes die and get replaced.
        z = centres[torch.randint(0, k // 4, (1024,))] + 0.02 * torch.randn(1024, d)
        z_ours, z_theirs = z.clone().requires_grad_(True), z.clone()[None].requires_grad_(True)
        torch.manual_seed(100 + step)  # same random draw for the replacements on both sides
        out = ours(z_ours)
        torch.manual_seed(100 + step)
        q, idx, loss = theirs(z_theirs)
        replaced += out.stats["replaced_codes"]
        assert torch.equal(out.indices, idx[0])
        torch.testing.assert_close(out.z_q, q[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.losses["commit"], loss.reshape(()), rtol=1e-5, atol=1e-8)
        upstream = torch.randn_like(z)
        (g_ours,) = torch.autograd.grad((out.z_q * upstream).sum(), z_ours)
        (g_theirs,) = torch.autograd.grad((q[0] * upstream).sum(), z_theirs)
        torch.testing.assert_close(g_ours, g_theirs[0], rtol=1e-4, atol=1e-6)
        cb = theirs._codebook
        torch.testing.assert_close(ours.cluster_size, cb.cluster_size[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.embed_sum, cb.embed_avg[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook, cb.embed[0], rtol=1e-5, atol=1e-6, msg=f"step {step}")
    assert replaced > 0, "the comparison must exercise dead-code replacement"


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
