"""Defining properties of the EMA codebook (vqrepro/quantizers/ema.py)."""
import torch

from vqrepro.quantizers import build_quantizer, nearest_code


def test_ema_with_zero_decay_sets_codes_to_assigned_means():
    torch.manual_seed(0)
    q = build_quantizer({"method": "ema", "decay": 0.0, "epsilon": 1e-12}, 6, 3)
    z = torch.randn(300, 3)
    indices, _ = nearest_code(z, q.codebook.clone())
    q.train()
    q(z)
    for code in indices.unique():
        torch.testing.assert_close(q.codebook[code], z[indices == code].mean(0), rtol=1e-5, atol=1e-5)


def test_ema_keeps_codes_unused_in_the_first_batches():
    """A code that no token picks stays where it was, so it can still be chosen once the
    encoder's outputs move (with counts starting at 0 it is sent ~1e5 times outward)."""
    torch.manual_seed(0)
    k, d = 64, 8
    q = build_quantizer({"method": "ema", "decay": 0.99}, k, d)
    q.train()
    start = q.codebook.clone()
    used = set()
    for _ in range(20):  # tokens near four codes only: the other 60 get nothing
        z = start[torch.randint(0, 4, (256,))] + 0.01 * torch.randn(256, d)
        used |= set(q(z).indices.tolist())
    unused = torch.tensor(sorted(set(range(k)) - used))
    assert len(unused) >= k - 8
    torch.testing.assert_close(q.codebook[unused], start[unused], rtol=1e-3, atol=1e-4)
    # Each unused code is still the nearest code of a token placed next to it.
    probe = start[unused] + 1e-3 * torch.randn(len(unused), d)
    q.eval()
    assert torch.equal(q(probe).indices, unused)


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


def test_ema_assigned_sums_match_index_add_in_every_chunking():
    from vqrepro.quantizers.ema import assigned_sums

    torch.manual_seed(0)
    z, indices = torch.randn(5000, 3), torch.randint(0, 4096, (5000,))
    expected = torch.zeros(4096, 3).index_add_(0, indices, z)
    torch.testing.assert_close(assigned_sums(z, indices, 4096), expected)
