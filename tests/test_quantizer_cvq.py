"""Defining properties of the CVQ-VAE quantizer (vqrepro/quantizers/cvq.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

from vqrepro.quantizers import REGISTRY
from vqrepro.quantizers.cvq import ANCHORS, REINITS, CVQQuantizer, softmax_sample


def cvq(k, d, **settings):
    return CVQQuantizer(k, d, CVQQuantizer.settings_from(settings))


def gamma_of(p, k, decay=0.99):
    return torch.exp(-(p * k * 10.0) / (1.0 - decay) - 1e-3)


def set_codes(q, codes):
    with torch.no_grad():
        q.codebook.copy_(codes)


def state(q):
    return {name: value.clone() for name, value in q.state_dict().items()}


# ---------------------------------------------------------------- the running-average rule


@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_unused_code_moves_onto_its_anchor_and_a_used_code_barely_moves(distance):
    torch.manual_seed(0)
    q = cvq(4, 2, distance=distance, anchor="closest")
    codes = torch.tensor([[1.0, 0.0], [-3.0, 0.5], [0.2, -4.0], [-2.0, -2.5]])
    set_codes(q, codes)
    z = torch.tensor([1.0, 0.05]) + 0.01 * torch.randn(64, 2)  # every token goes to code 0
    q.train()
    out = q(z)
    assert out.indices.unique().tolist() == [0]
    after = q.codebook.detach()
    # Code 0 took every token: p = 0.01, gamma = exp(-40 - 1e-3) ~ 4e-18.
    torch.testing.assert_close(after[0], codes[0], rtol=0, atol=1e-6)
    # Codes 1-3 took none: p = 0, gamma = exp(-1e-3) = 0.999 -> 0.1% of the old code is left.
    metric = (lambda a, b: 1 - F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()) if distance == "cosine" \
        else (lambda a, b: torch.cdist(a, b))
    anchors = z[metric(codes[1:], z).argmin(dim=1)]
    g = math.exp(-1e-3)
    torch.testing.assert_close(after[1:], codes[1:] * (1 - g) + anchors * g)
    assert ((after[1:] - anchors).norm(dim=1) <= 1.001e-3 * (codes[1:] - anchors).norm(dim=1)).all()


def test_running_usage_follows_the_decay_rule_and_gamma_its_formula():
    torch.manual_seed(0)
    q = cvq(8, 3, decay=0.9)
    q.train()
    expected = torch.zeros(8)
    for _ in range(5):
        out = q(torch.randn(40, 3))
        counts = torch.bincount(out.indices.reshape(-1), minlength=8).float()
        expected = 0.9 * expected + 0.1 * counts / 40
        torch.testing.assert_close(q.usage, expected)
    torch.testing.assert_close(q.gamma(), gamma_of(expected, 8, decay=0.9))


def test_gamma_is_near_one_for_unused_and_near_zero_for_fairly_used_codes():
    q = cvq(512, 4)
    q.usage.copy_(torch.tensor([0.0, 1e-7, 1.0 / 512] + [0.0] * 509))
    g = q.gamma()
    assert g[0] == pytest.approx(math.exp(-1e-3)) and 0.9 < g[1] < 1.0 and g[2] < 1e-30


# ---------------------------------------------------------------- evaluation mode


@pytest.mark.parametrize("anchor", ANCHORS)
@pytest.mark.parametrize("reinit", REINITS)
@pytest.mark.parametrize("mode", ["online", "offline"])
def test_evaluation_never_changes_the_codebook_or_any_buffer(anchor, reinit, mode):
    torch.manual_seed(0)
    q = cvq(16, 4, anchor=anchor, reinit=reinit, mode=mode, contrastive=True)
    before = state(q)
    q.eval()
    for _ in range(3):
        out = q(torch.randn(50, 4) * 3)
    for name, value in q.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert set(out.losses) == {"commit", "codebook"} and "dead_share" not in out.stats


# ---------------------------------------------------------------- anchors


@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("max_elements", [1, 13, 2**22])
def test_closest_anchors_are_the_nearest_batch_features(distance, max_elements):
    torch.manual_seed(0)
    q = cvq(24, 5, anchor="closest", distance=distance)
    set_codes(q, torch.randn(24, 5))
    q.max_elements = max_elements
    z = torch.randn(300, 5) * torch.rand(300, 1) * 4
    anchors = q.anchors(z, torch.arange(24))
    codes = q.codebook.detach()
    if distance == "l2":
        dist = torch.cdist(codes, z)
    else:
        dist = 1 - F.normalize(codes, dim=1) @ F.normalize(z, dim=1).t()
    assert torch.equal(anchors, z[dist.argmin(dim=1)])  # raw features, not normalised ones


def test_unique_anchors_are_distinct_batch_features():
    torch.manual_seed(0)
    q = cvq(32, 3, anchor="unique")
    z = torch.randn(40, 3)
    anchors = q.anchors(z, torch.arange(32))
    rows = (anchors[:, None] == z[None]).all(-1)
    assert (rows.sum(1) == 1).all()  # each anchor is one batch feature
    assert rows.any(0).sum() == 32  # and no two codes share one
    small = q.anchors(z[:10], torch.arange(32))  # fewer tokens than codes: as even as possible
    uses = (small[:, None] == z[:10][None]).all(-1).sum(0)
    assert uses.sum() == 32 and uses.min() >= 3 and uses.max() <= 4


def test_random_anchors_come_from_a_feature_pool_that_persists_in_buffers():
    torch.manual_seed(0)
    q = cvq(8, 2, anchor="random")
    big = torch.randn(100, 2)
    anchors = q.anchors(big, torch.arange(8))
    assert (anchors[:, None] == big[None]).all(-1).any(1).all()  # batch larger than K: batch features
    q2 = cvq(8, 2, anchor="random")
    first, second = torch.randn(3, 2) + 10, torch.randn(3, 2) - 10
    q2.anchors(first, torch.arange(8))
    pool = q2.anchors(second, torch.arange(8))
    torch.testing.assert_close(pool[:6], torch.cat([first, second]))  # small batches fill the pool
    assert int(q2.pool.filled) == 6
    clone = cvq(8, 2, anchor="random")
    clone.load_state_dict(q2.state_dict())
    torch.testing.assert_close(clone.pool.features, q2.pool.features)
    last = torch.randn(2, 2) + 100
    pool = q2.anchors(last, torch.arange(8)).clone()
    torch.testing.assert_close(pool, torch.cat([first, second, last]))  # empty slots first
    assert int(q2.pool.filled) == 8
    late = torch.randn(3, 2) - 100
    after = q2.anchors(late, torch.arange(8))
    assert ((after[:, None] == late[None]).all(-1).sum(0) == 1).all()  # a full pool: random slots overwritten
    assert ((after != pool).any(1).sum()) == 3
    overflow = torch.randn(9, 2) * 0.01
    q3 = cvq(8, 2, anchor="random")
    q3.anchors(torch.randn(5, 2), torch.arange(8))
    pool = q3.anchors(overflow[:5], torch.arange(8))  # 5 + 5 > 8: fill 3 slots, overwrite 2 others
    assert int(q3.pool.filled) == 8 and ((pool[:, None] == overflow[:5][None]).all(-1).sum(0) == 1).all()


@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_probability_anchors_follow_the_softmax_of_negative_distance(distance):
    torch.manual_seed(0)
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.2]])
    code = torch.tensor([[1.0, 0.1]])
    if distance == "l2":
        dist = (z - code).pow(2).sum(1)
    else:
        dist = 1 - F.normalize(z, dim=1) @ F.normalize(code, dim=1).t()[:, 0]
    expected = torch.softmax(-dist, dim=0)
    for max_elements in (1, 2**22):  # chunked over tokens or not, the same distribution
        draws = softmax_sample(code.repeat(20000, 1), z, distance, max_elements)
        freq = torch.bincount(draws, minlength=3).float() / draws.numel()
        torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)
    q = cvq(20000, 2, anchor="probability", distance=distance)
    set_codes(q, code.repeat(20000, 1))
    anchors = q.anchors(z, torch.arange(20000))
    freq = (anchors[:, None] == z[None]).all(-1).float().mean(0)
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


# ---------------------------------------------------------------- online / offline


def test_offline_reinitialises_only_on_the_first_training_batch():
    torch.manual_seed(0)
    q = cvq(8, 2, mode="offline")
    q.train()
    start = q.codebook.detach().clone()
    first = torch.randn(64, 2) * 5
    q(first)
    after_first = q.codebook.detach().clone()
    assert not torch.allclose(after_first, start)
    assert bool(q.initialised)
    # Second batch far away, all codes' usage forced to zero (gamma ~ 1): still no re-initialisation.
    q.usage.zero_()
    q(torch.randn(64, 2) + 50)
    torch.testing.assert_close(q.codebook.detach(), after_first)
    # The flag survives a checkpoint: a resumed quantizer does not re-initialise either.
    resumed = cvq(8, 2, mode="offline")
    resumed.load_state_dict(q.state_dict())
    resumed.train()
    resumed.usage.zero_()
    resumed(torch.randn(64, 2) + 50)
    torch.testing.assert_close(resumed.codebook.detach(), after_first)
    # Online, the same second batch re-initialises the (now unused) codes.
    online = cvq(8, 2, mode="online")
    online.load_state_dict(q.state_dict())
    online.train()
    online.usage.zero_()
    online(torch.randn(64, 2) + 50)
    assert (online.codebook.detach().mean(1) > 40).any()


def test_the_first_training_batch_reinitialises_from_zero_usage():
    torch.manual_seed(0)
    q = cvq(16, 3)
    z = torch.randn(200, 3) * 4
    q.train()
    out = q(z)
    used = torch.zeros(16, dtype=torch.bool)
    used[out.indices.unique()] = True
    moved = q.codebook.detach()
    # Every code the batch left unused now sits on (within 0.1% of) a batch feature.
    gap = torch.cdist(moved[~used], z).min(dim=1).values
    assert (gap < 1e-2).all()
    assert out.stats["dead_share"] == pytest.approx((~used).float().mean().item())


# ---------------------------------------------------------------- reinitialisation variants


def dead_and_live_setup(reinit, **settings):
    torch.manual_seed(0)
    q = cvq(6, 2, distance="l2", reinit=reinit, **settings)
    codes = torch.tensor([[2.0, 0.0], [0.0, 2.0], [30.0, 30.0], [-30.0, 30.0], [30.0, -30.0], [-40.0, -40.0]])
    set_codes(q, codes)
    centres = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    z = torch.cat([c + 0.05 * torch.randn(50, 2) for c in centres])  # codes 0 and 1 take everything
    q.train()
    out = q(z)
    assert sorted(out.indices.unique().tolist()) == [0, 1]
    return q, codes, z


def test_hard_features_replaces_each_dead_code_by_its_anchor_and_leaves_live_codes():
    q, codes, z = dead_and_live_setup("hard_features", anchor="closest")
    after = q.codebook.detach()
    torch.testing.assert_close(after[:2], codes[:2], rtol=0, atol=0)  # live codes: untouched
    torch.testing.assert_close(after[2:], z[torch.cdist(codes[2:], z).argmin(dim=1)], rtol=0, atol=0)


def test_near_codes_moves_dead_codes_next_to_used_codes():
    q, codes, _ = dead_and_live_setup("near_codes", near_noise=0.01)
    after = q.codebook.detach()
    torch.testing.assert_close(after[:2], codes[:2], rtol=0, atol=0)
    gap = torch.cdist(after[2:], codes[:2]).min(dim=1).values
    assert (gap > 0).all() and (gap < 0.2).all()  # 0.01 * |code| noise per dimension
    exact, codes, _ = dead_and_live_setup("near_codes", near_noise=0.0)
    copies = exact.codebook.detach()[2:]
    assert ((copies[:, None] == codes[:2][None]).all(-1).sum(1) == 1).all()  # copies of live codes


def test_near_codes_copies_the_only_live_code():
    torch.manual_seed(0)
    q = cvq(4, 2, distance="l2", reinit="near_codes", near_noise=0.0)
    set_codes(q, torch.tensor([[1.0, 1.0], [9.0, 9.0], [-9.0, 9.0], [9.0, -9.0]]))
    q.train()
    q(torch.tensor([1.0, 1.0]) + 0.1 * torch.randn(30, 2))
    torch.testing.assert_close(q.codebook.detach(), torch.tensor([[1.0, 1.0]]).repeat(4, 1))


def test_hard_variants_use_the_running_usage_to_call_a_code_dead():
    q, _, _ = dead_and_live_setup("hard_features", dead_gamma=0.5)
    g = q.gamma()
    assert (g[:2] < 0.5).all() and (g[2:] > 0.5).all()


# ---------------------------------------------------------------- losses and gradients


def test_forward_is_the_raw_nearest_code_with_a_straight_through_gradient_and_vq_losses():
    torch.manual_seed(0)
    q = cvq(16, 4, distance="cosine")
    set_codes(q, torch.randn(16, 4))
    codes = q.codebook.detach().clone()
    z = torch.randn(3, 5, 4, requires_grad=True)
    q.train()
    out = q(z)  # the training step also re-initialises codes in place
    flat = z.detach().reshape(-1, 4)
    expected = (F.normalize(flat, dim=1) @ F.normalize(codes, dim=1).t()).argmax(dim=1)
    assert torch.equal(out.indices.reshape(-1), expected)
    torch.testing.assert_close(out.z_q.detach().reshape(-1, 4), codes[expected])  # raw, not normalised
    distance = (flat - codes[expected]).pow(2).mean()
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    torch.testing.assert_close(out.losses["codebook"], distance)
    upstream = torch.randn_like(out.z_q)
    ((out.z_q * upstream).sum() + out.losses["codebook"]).backward()
    torch.testing.assert_close(z.grad, upstream)
    assert q.codebook.grad is not None and q.codebook.grad.abs().sum() > 0


def reference_contrastive(z, codes, distance, k, temperature=0.07):
    """The public code's contrastive term, written with its sort."""
    if distance == "cosine":
        d = F.normalize(z, dim=1) @ F.normalize(codes, dim=1).t()
    else:
        d = -(z.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * z @ codes.t())
    sort_distance, _ = d.sort(dim=0)
    dis_pos = sort_distance[-max(1, int(sort_distance.size(0) / k)):, :].mean(dim=0, keepdim=True)
    dis_neg = sort_distance[: int(sort_distance.size(0) * 1 / 2), :]
    dis = torch.cat([dis_pos, dis_neg], dim=0).t() / temperature
    return F.cross_entropy(dis, torch.zeros((dis.size(0),), dtype=torch.long))


@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_contrastive_loss_matches_the_public_code_and_trains_only_the_codebook(distance):
    torch.manual_seed(0)
    q = cvq(8, 4, distance=distance, contrastive=True)
    set_codes(q, torch.randn(8, 4))
    codes = q.codebook.detach().clone()
    z = torch.randn(50, 4, requires_grad=True)
    assert "contrastive" not in cvq(8, 4)(z).losses  # off by default, as in main.py
    q.train()
    out = q(z)
    torch.testing.assert_close(out.losses["contrastive"], reference_contrastive(z.detach(), codes, distance, 8))
    out.losses["contrastive"].backward()  # after the in-place re-initialisation of this step
    assert z.grad is None and q.codebook.grad.abs().sum() > 0


# ---------------------------------------------------------------- settings, registry, behaviour


def test_bad_settings_are_rejected_with_their_name():
    with pytest.raises(ValueError, match="anchor"):
        cvq(8, 4, anchor="probrandom")
    with pytest.raises(ValueError, match="reinit"):
        cvq(8, 4, reinit="kmeans")
    with pytest.raises(ValueError, match="mode"):
        cvq(8, 4, mode="sometimes")
    with pytest.raises(ValueError, match="decay"):
        cvq(8, 4, decay=1.0)
    with pytest.raises(KeyError, match="beta"):
        cvq(8, 4, beta=0.25)


@pytest.mark.skipif("cvq" not in REGISTRY, reason="cvq is not registered in vqrepro/quantizers/__init__.py")
def test_registered_as_cvq_with_the_paper_defaults():
    from vqrepro.quantizers import build_quantizer

    q = build_quantizer({"method": "cvq"}, 8, 4)
    assert isinstance(q, CVQQuantizer)
    s = q.settings
    assert (s.distance, s.anchor, s.mode, s.reinit, s.decay, s.commit_weight, s.contrastive) == (
        "cosine", "closest", "online", "running_average", 0.99, 0.25, False)


@pytest.mark.parametrize("anchor", ANCHORS)
@pytest.mark.parametrize("reinit", REINITS)
def test_every_variant_trains_and_round_trips_a_state_dict(anchor, reinit):
    torch.manual_seed(0)
    q = cvq(8, 4, anchor=anchor, reinit=reinit)
    q.train()
    for _ in range(3):
        out = q(torch.randn(2, 3, 3, 4))
        assert out.indices.shape == (2, 3, 3) and set(out.stats) >= {"batch_usage", "dead_share"}
        assert torch.isfinite(q.codebook).all()
    clone = cvq(8, 4, anchor=anchor, reinit=reinit)
    clone.load_state_dict(q.state_dict())
    torch.testing.assert_close(clone.codes(), q.codes())
    torch.testing.assert_close(clone.usage, q.usage)


def test_online_clustering_revives_a_collapsed_codebook():
    torch.manual_seed(0)
    centres = torch.randn(16, 8) * 3

    def batch():
        return centres.repeat_interleave(16, 0) + 0.1 * torch.randn(256, 8)

    held_out = batch()

    def codes_used_after_training(q, steps=300):
        opt = torch.optim.SGD(q.parameters(), lr=0.5)
        q.train()
        for _ in range(steps):
            out = q(batch())
            opt.zero_grad()
            sum(out.losses.values()).backward()
            opt.step()
        q.eval()
        return q(held_out).indices.unique().numel()

    plain = cvq(16, 8, mode="offline")
    plain.initialised.fill_(True)  # never re-initialises: plain VQ, same loss and lookup
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (10x on a busy 2-core machine)
    try:
        baseline = codes_used_after_training(plain)
        revived = codes_used_after_training(cvq(16, 8))
    finally:
        torch.set_num_threads(threads)
    assert baseline <= 12 and revived >= 14 and revived >= baseline + 3


def test_reproductions_run_the_release_code_values(params):
    """The CVQ-VAE presets follow lyndonzheng/CVQ-VAE (main.py's defaults, quantise.py) where its text is silent."""
    from vqrepro.quantizers import build_quantizer

    code = build_quantizer(params["quantizers"]["cvq"], 64, 8)
    s = code.settings
    # cosine lookup, beta 0.25 on the encoder side, usage decay 0.99, closest anchors, running-average re-init,
    # online, no contrastive term; codes start at U(-1/K, 1/K)
    assert (s.distance, s.commit_weight, s.codebook_weight, s.decay) == ("cosine", 0.25, 1.0, 0.99)
    assert (s.anchor, s.reinit, s.mode, s.contrastive) == ("closest", "running_average", "online", False)
    assert code.codebook.abs().max() <= 1 / 64
    # the one mini-scale departure, decay 0.9 on the Fig. 1 headline row, runs beside the code's value
    assert build_quantizer(params["quantizers"]["cvq_photo"], 64, 8).settings.decay == 0.9
    assert {"cvq", "cvq_photo"} <= set(params["studies"]["cvq_usage"]["quantizers"])
