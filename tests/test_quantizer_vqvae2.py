"""Defining properties of the NS-VQ paper's "VQVAE2" quantizer (vqrepro/quantizers/vqvae2.py).

The cross-check against vector-quantize-pytorch is skipped when that test extra is not
installed; every other test needs torch only.
"""
import math

import pytest
import torch

from vqrepro.quantizers.ema import EMAQuantizer
from vqrepro.quantizers.vqvae2 import VQVAE2Quantizer, kaiming_kd_init
from conftest import make


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
