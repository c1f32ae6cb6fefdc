"""Defining properties of NS-VQ ("Beyond Stationarity", Sec. 3.3; vqrepro/quantizers/nsvq.py)."""
import pytest
import torch
import torch.nn.functional as F

from vqrepro.quantizers.nsvq import NSVQSettings, NSVQuantizer, kernel_embedding_loss
from vqrepro.quantizers.vq import VectorQuantizer, VQSettings


def nsvq(k=16, d=4, **settings):
    return NSVQuantizer(k, d, NSVQSettings(**settings))


def dense_kernel_loss(z, codebook, kernel_weight, tau):
    """Eq. 17 written out as the public CelebA code does, with the full N x K weight matrix."""
    dist = torch.cdist(z, codebook.detach()).pow(2)
    onehot = F.one_hot(dist.argmin(1), codebook.shape[0]).float()
    soft = kernel_weight * codebook.shape[0] * torch.softmax(-dist / tau, dim=1)
    weights = (soft * (1 - onehot) + onehot).clamp(0, 1)
    per_code = (z.detach()[:, None, :] - codebook[None]).pow(2).mean(-1)  # (N, K)
    return (weights * per_code).sum() / z.shape[0]


def test_nsvq_with_zero_lambda_is_plain_vq_codebook_loss():
    torch.manual_seed(0)
    q = nsvq(kernel_weight=0.0, modified_ste=False)
    plain = VectorQuantizer(16, 4, VQSettings())
    plain.codebook.data.copy_(q.codebook.data)
    z = torch.randn(40, 4) * 0.2
    q.train(), plain.train()
    ours, theirs = q(z), plain(z)
    assert torch.equal(ours.indices, theirs.indices)
    for name in ("commit", "codebook"):
        torch.testing.assert_close(ours.losses[name], theirs.losses[name])
    ours.losses["codebook"].backward()
    theirs.losses["codebook"].backward()
    torch.testing.assert_close(q.codebook.grad, plain.codebook.grad)


def test_nsvq_kernel_loss_reaches_codes_that_plain_vq_leaves_alone():
    torch.manual_seed(0)
    q = nsvq(k=32, kernel_weight=0.01, modified_ste=False)
    z = torch.randn(10, 4) * 0.02  # 10 tokens: at most 10 of 32 codes assigned
    q.train()
    out = q(z)
    out.losses["codebook"].backward()
    unused = torch.ones(32, dtype=torch.bool)
    unused[out.indices] = False
    assert unused.sum() >= 22
    assert (q.codebook.grad[unused].abs().sum(1) > 0).all()  # every unassigned code is pulled

    plain = VectorQuantizer(32, 4, VQSettings())
    plain.codebook.data.copy_(q.codebook.data)
    plain(z).losses["codebook"].backward()
    assert (plain.codebook.grad[unused] == 0).all()


@pytest.mark.parametrize("max_elements", [1, 13, 2**22])
@pytest.mark.parametrize("epoch", [0, 2])
def test_nsvq_kernel_loss_matches_the_dense_formula(max_elements, epoch):
    torch.manual_seed(0)
    q = NSVQuantizer(24, 3, NSVQSettings(kernel_weight=0.05, tau_decay=0.5), max_elements=max_elements)
    q.codebook.data.normal_(0, 0.3)
    z = torch.randn(50, 3) * 0.3
    q.train()
    q.begin_step(0, epoch)
    out = q(z)
    reference_codes = q.codebook.detach().clone().requires_grad_()
    expected = dense_kernel_loss(z, reference_codes, 0.05, 0.5**epoch)
    torch.testing.assert_close(out.losses["codebook"], expected)
    out.losses["codebook"].backward()
    expected.backward()
    torch.testing.assert_close(q.codebook.grad, reference_codes.grad)


def test_nsvq_codebook_loss_moves_only_codes():
    torch.manual_seed(0)
    q = nsvq()
    z = torch.randn(20, 4, requires_grad=True)
    q.train()
    q(z).losses["codebook"].backward()
    assert z.grad is None and q.codebook.grad is not None


def test_nsvq_tau_follows_the_epoch_schedule():
    code, text = nsvq(), nsvq(tau_decay=0.9)
    # The release's CelebA code by default (it made the published tables); the paper's text is a variant.
    assert (code.settings.tau_start, code.settings.tau_decay) == (1.0, 0.5)
    for epoch in range(5):
        for q, decay in ((text, 0.9), (code, 0.5)):
            q.begin_step(step=100 * epoch + 7, epoch=epoch)
            assert q.tau() == pytest.approx(decay**epoch)
            q.train()
            assert q(torch.randn(8, 4)).stats["tau"] == pytest.approx(decay**epoch)
    started = nsvq(tau_start=2.0, tau_decay=0.5)
    started.begin_step(0, 3)
    assert started.tau() == pytest.approx(0.25)
    started.begin_step(0, 10**6)
    assert started.tau() > 0  # floored as in the public code, never zero


def test_nsvq_small_tau_concentrates_the_kernel_on_the_assigned_code():
    """As tau -> 0 the softmax puts its mass on the nearest (assigned) code, so the loss becomes plain VQ's."""
    torch.manual_seed(0)
    z, codes = torch.randn(30, 4), torch.randn(16, 4)
    indices = torch.cdist(z, codes).argmin(1)
    plain = F.mse_loss(z, codes[indices])
    torch.testing.assert_close(kernel_embedding_loss(z, codes, indices, 0.5, 1e-8), plain)
    assert kernel_embedding_loss(z, codes, indices, 0.5, 10.0) > plain


def test_nsvq_modified_ste_keeps_the_value_and_scales_the_codebook_gradient():
    torch.manual_seed(0)
    q = nsvq(k=5, d=3, codebook_weight=1.0)
    q.codebook.data.normal_()
    z = torch.randn(2, 4, 3, requires_grad=True)  # B*H*W*D = 24 elements
    q.eval()
    out = q(z)
    expected = q.codebook.detach()[out.indices]
    torch.testing.assert_close(out.z_q, expected)  # forward value is z_q
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)  # encoder: straight through
    a = 2 * 1.0 / 24
    per_code = torch.zeros(5, 3).index_add_(0, out.indices.reshape(-1), upstream.reshape(-1, 3))
    torch.testing.assert_close(q.codebook.grad, a * per_code)  # codebook: a * upstream


def test_nsvq_ste_scale_follows_codebook_weight_and_can_be_switched_off():
    torch.manual_seed(0)
    z = torch.randn(6, 2, requires_grad=True)
    grads = {}
    for name, settings in {"w1": {}, "w3": {"codebook_weight": 3.0}, "off": {"modified_ste": False}}.items():
        torch.manual_seed(1)
        q = nsvq(k=4, d=2, **settings)
        q.eval()
        q(z).z_q.sum().backward()
        grads[name] = q.codebook.grad
    torch.testing.assert_close(grads["w3"], 3 * grads["w1"])
    assert grads["off"] is None


def test_nsvq_evaluation_uses_the_plain_codebook_loss():
    torch.manual_seed(0)
    q = nsvq(kernel_weight=0.5)
    z = torch.randn(20, 4)
    q.eval()
    out = q(z)
    torch.testing.assert_close(out.losses["codebook"], F.mse_loss(z, q.codebook.detach()[out.indices]))
    assert "tau" not in out.stats


@pytest.mark.parametrize("bad", [{"kernel_weight": -1.0}, {"tau_start": 0.0}, {"tau_decay": 1.5}])
def test_nsvq_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        nsvq(**bad)


def test_reproductions_run_the_release_code_values(params):
    """The presets the NS-VQ reproductions train use the values of the code that made the published tables."""
    from vqrepro.quantizers import build_quantizer

    presets = params["quantizers"]
    released = build_quantizer(presets["nsvq"], 16, 4).settings
    # CelebA code, VectorQuantizer(mem_flag=True, q_flag=True): tau = 1 * 0.5**epoch, lambda 0.01,
    # beta 0.25 on the encoder side, alpha 1 on the codebook side and in the modified STE.
    assert (released.tau_start, released.tau_decay, released.kernel_weight) == (1.0, 0.5, 0.01)
    assert (released.commit_weight, released.codebook_weight, released.modified_ste) == (0.25, 1.0, True)
    assert build_quantizer(presets["nsvq_text"], 16, 4).settings.tau_decay == 0.9  # the paper's text, a variant
    # Initial codes Uniform(-1/K, 1/K), as the code's nn.Embedding re-initialised.
    assert build_quantizer(presets["nsvq"], 16, 4).codebook.abs().max() <= 1 / 16
