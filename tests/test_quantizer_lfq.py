"""Defining properties of LFQ (vqrepro/quantizers/lfq.py).

The cross-check against vector-quantize-pytorch is skipped when that test extra is not
installed; every other test needs torch only.
"""
import math

import pytest
import torch

from vqrepro.quantizers.lfq import LFQQuantizer
from conftest import make


def test_lfq_outputs_are_signs_and_indices_round_trip_through_bits():
    torch.manual_seed(0)
    q = make(LFQQuantizer, 32, 5)
    z = torch.randn(1000, 5, requires_grad=True)
    out = q(z)
    assert set(out.z_q.detach().unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(out.z_q.detach(), torch.where(z.detach() > 0, 1.0, -1.0))
    bits = q.indices_to_bits(torch.arange(32))
    assert torch.equal(q.bits_to_indices(bits), torch.arange(32))
    assert len(torch.unique(bits, dim=0)) == 32
    assert torch.equal(q.indices_to_bits(torch.tensor(0b10110)), torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0]))  # MSB first
    torch.testing.assert_close(q.lookup(out.indices), out.z_q.detach())
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)  # straight-through


def test_lfq_needs_a_power_of_two():
    for k in (1, 3, 1000):
        with pytest.raises(ValueError, match="power of 2"):
            make(LFQQuantizer, k, 4)
    q = make(LFQQuantizer, 1024, 16)
    assert q.bits == 10 and q.codes().shape == (1024, 16)


def entropy_parts(q, x):
    per_sample, batch = q.entropies(x)
    return per_sample.item(), batch.item()


def test_lfq_entropy_loss_on_hand_built_inputs():
    q = make(LFQQuantizer, 8, 3)
    q.train()
    all_codes = q.indices_to_bits(torch.arange(8))
    confident_diverse = all_codes.repeat(10, 1)  # every code equally often, far from the sign boundaries
    confident_half = all_codes[:4].repeat(20, 1)  # half of the codes
    confident_collapsed = all_codes[5].expand(80, 3)  # one code
    unsure = torch.full((80, 3), 1e-6)  # on the sign boundaries
    # per-sample part: zero for confident tokens, maximal (bits * log 2) at the boundaries
    for x in (confident_diverse, confident_half, confident_collapsed):
        assert entropy_parts(q, x)[0] == pytest.approx(0.0, abs=1e-6)
    assert entropy_parts(q, unsure)[0] == pytest.approx(3 * math.log(2), rel=1e-3)
    # batch part: the entropy of the codes the batch uses
    assert entropy_parts(q, confident_diverse)[1] == pytest.approx(math.log(8), rel=1e-5)
    assert entropy_parts(q, confident_half)[1] == pytest.approx(math.log(4), rel=1e-5)
    assert entropy_parts(q, confident_collapsed)[1] == pytest.approx(0.0, abs=1e-5)

    def loss(x):
        return q(x).losses["entropy"].item()

    # weight 0.1, gamma 1: the loss is lowest for confident and diverse codes
    assert loss(confident_diverse) == pytest.approx(-0.1 * math.log(8), rel=1e-4)
    assert loss(confident_half) == pytest.approx(-0.1 * math.log(4), rel=1e-4)
    assert loss(confident_collapsed) == pytest.approx(0.0, abs=1e-5)
    assert loss(unsure) == pytest.approx(0.0, abs=1e-3)  # uniform on average, but every token unsure
    assert loss(confident_diverse) < loss(confident_half) < loss(confident_collapsed)
    q.eval()
    assert set(q(confident_diverse).losses) == {"commit"}  # the entropy term is a training-time loss


def test_lfq_batch_entropy_matches_the_full_matrix_in_every_chunking(monkeypatch):
    from vqrepro.quantizers import lfq

    torch.manual_seed(0)
    q = make(LFQQuantizer, 64, 6, entropy_inv_temperature=1.0)
    x = torch.randn(300, 6, requires_grad=True)
    full = torch.softmax(2.0 * x @ q.indices_to_bits(torch.arange(64)).t(), 1)
    expected = -(full.mean(0) * full.mean(0).log()).sum()
    expected_ps = -(full * full.log()).sum(1).mean()
    g_expected = torch.autograd.grad(expected, x)[0]
    for max_elements in (64, 64 * 7, 2**22):  # one token per chunk (checkpointed), 7 per chunk, one chunk
        monkeypatch.setattr(lfq, "DEFAULT_MAX_ELEMENTS", max_elements)
        per_sample, batch = q.entropies(x)
        torch.testing.assert_close(batch, expected)
        torch.testing.assert_close(per_sample, expected_ps)
        torch.testing.assert_close(torch.autograd.grad(batch, x)[0], g_expected)


def test_lfq_matches_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    ref = vqp.LFQ(dim=6, codebook_size=64, entropy_loss_weight=0.1, diversity_gamma=1.0, commitment_loss_weight=0.25)
    ref.train()
    ours = make(LFQQuantizer, 64, 6)
    ours.train()
    for scale in (0.01, 0.1, 1.0):
        x = torch.randn(1, 300, 6) * scale
        quantized, indices, aux = ref(x)
        out = ours(x[0])
        assert torch.equal(indices[0].long(), out.indices)
        torch.testing.assert_close(quantized[0], out.z_q)
        # the reference clamps probabilities at 1e-5 inside its logs: agreement to ~1e-5
        torch.testing.assert_close(aux, out.losses["entropy"] + out.losses["commit"], rtol=1e-3, atol=1e-5)
