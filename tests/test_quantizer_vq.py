"""Defining properties of VQ-VAE (vqrepro/quantizers/vq.py) and the add-ons of "Straightening Out the STE"."""
import pytest
import torch

from vqrepro.quantizers import build_quantizer


def brute_force(z, codebook):
    return torch.cdist(z, codebook).argmin(dim=1)


def test_vq_forward_is_nearest_code_and_gradient_is_straight_through():
    torch.manual_seed(0)
    q = build_quantizer({"method": "vq"}, 16, 4)
    z = torch.randn(3, 5, 4, requires_grad=True)
    out = q(z)
    codes = q.codebook.detach()
    expected = codes[brute_force(z.detach().reshape(-1, 4), codes)].reshape(3, 5, 4)
    torch.testing.assert_close(out.z_q, expected)
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)  # identity gradient
    assert q.codebook.grad is None  # z_q's task gradient never reaches the codebook


def test_vq_losses_split_encoder_and_codebook_sides():
    torch.manual_seed(0)
    q = build_quantizer({"method": "vq", "commit_weight": 0.25, "codebook_weight": 1.0}, 8, 4)
    z = torch.randn(32, 4, requires_grad=True)
    out = q(z)
    distance = (z.detach() - q.codebook.detach()[out.indices]).pow(2).mean()
    torch.testing.assert_close(out.losses["commit"], 0.25 * distance)
    torch.testing.assert_close(out.losses["codebook"], distance)
    out.losses["commit"].backward()
    assert q.codebook.grad is None  # commitment moves only the encoder
    z.grad = None
    q(z).losses["codebook"].backward()
    assert z.grad is None and q.codebook.grad is not None  # codebook loss moves only the codes


# ------------------------------------------------- add-ons of "Straightening Out the STE"


def vq_with(k, d, **settings):
    return build_quantizer({"method": "vq", **settings}, k, d)


def clusters(centres, per_cluster=50, spread=0.01):
    return torch.cat([c + spread * torch.randn(per_cluster, c.shape[0]) for c in centres])


def test_kmeans_init_puts_codes_on_the_first_batch_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
    q = vq_with(4, 2, init="kmeans")
    q.train()
    q(clusters(centres))
    found = q.codebook.detach()
    matched = torch.cdist(centres, found).min(dim=1).values
    assert matched.max() < 0.05  # every cluster got its own code


def test_repeat_kmeans_runs_again_only_when_the_epoch_changes():
    torch.manual_seed(0)
    q = vq_with(4, 2, init="kmeans", repeat_kmeans=True)
    q.train()
    q.begin_step(0, 0)
    q(clusters(torch.randn(4, 2) * 5))
    first = q.codebook.detach().clone()
    q.begin_step(1, 0)
    q(clusters(torch.randn(4, 2) * 5 + 20))
    assert torch.equal(q.codebook.detach(), first)  # same epoch: no re-clustering
    q.begin_step(2, 1)
    q(clusters(torch.randn(4, 2) * 5 + 20))
    assert q.codebook.detach().mean() > 10  # new epoch: codes moved onto the new data


def test_lru_replaces_exactly_the_codes_idle_for_timeout_steps():
    torch.manual_seed(0)
    q = vq_with(4, 2, replace_after=3)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0], [10.0, -10.0]]))
    q.train()
    near_code0 = 0.01 * torch.randn(16, 2)
    near_code1 = torch.tensor([10.0, 10.0]) + 0.01 * torch.randn(16, 2)
    q(torch.cat([near_code0, near_code1]))  # step 1: codes 0, 1 used; 2, 3 idle 1 step
    q(near_code0)                           # step 2: code 1 idle 1, codes 2, 3 idle 2
    before = q.codebook.detach().clone()
    q(near_code0)                           # step 3: codes 2, 3 reach 3 idle steps -> replaced
    q.on_step(2)                            # replacement lands after the optimiser step
    after = q.codebook.detach()
    assert torch.equal(after[:2], before[:2])  # code 0 (used) and code 1 (idle 2) untouched
    assert after[2:].norm(dim=1).max() < 0.5   # replaced by batch tokens (near 0) plus small noise
    assert q.lru.idle_steps.tolist() == [0, 2, 0, 0]


def test_lru_never_acts_in_eval_mode():
    q = vq_with(4, 2, replace_after=1)
    before = q.codebook.detach().clone()
    q.eval()
    q(torch.zeros(8, 2))
    assert torch.equal(q.codebook.detach(), before)


def test_sync_commitment_changes_no_forward_value_and_sends_nu_times_the_gradient_to_codes():
    torch.manual_seed(0)
    plain, synced = vq_with(8, 3), vq_with(8, 3, sync_nu=0.5)
    synced.load_state_dict(plain.state_dict())
    z = torch.randn(20, 3, requires_grad=True)
    a, b = plain(z), synced(z)
    torch.testing.assert_close(a.z_q, b.z_q)
    upstream = torch.randn(20, 3)
    (b.z_q * upstream).sum().backward()
    expected = torch.zeros(8, 3).index_add_(0, b.indices, 0.5 * upstream)
    torch.testing.assert_close(synced.codebook.grad, expected)
    torch.testing.assert_close(z.grad, upstream)


def test_learnable_affine_moves_codes_that_were_never_selected():
    torch.manual_seed(0)
    q = vq_with(8, 2, affine="learnable", affine_lr_scale=5.0)
    z = torch.randn(1, 2) + 3.0  # one token: exactly one code gets selected
    out = q(z)
    out.losses["codebook"].backward()
    before = q.codes().detach().clone()
    with torch.no_grad():
        for p in q.codebook_parameters():
            p -= 0.1 * p.grad
    moved = (q.codes().detach() - before).norm(dim=1) > 0
    assert moved.all()  # through the shared scale and bias, every code moves


def test_ema_affine_matches_code_moments_to_the_encoder_outputs():
    torch.manual_seed(0)
    q = vq_with(64, 3, affine="ema")
    q.train()
    z = torch.randn(500, 3) * torch.tensor([3.0, 0.5, 1.0]) + torch.tensor([10.0, -2.0, 0.0])
    q(z)  # the first batch initialises the moving moments
    codes = q.codes().detach()
    torch.testing.assert_close(codes.mean(0), z.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(codes.var(0, unbiased=False), z.var(0, unbiased=False), rtol=1e-3, atol=1e-4)  # eps 1e-8 in sigma(C)


def test_l2_normalisation_puts_tokens_and_codes_on_the_sphere():
    torch.manual_seed(0)
    q = vq_with(16, 4, l2_normalize=True)
    out = q(torch.randn(30, 4) * 7)
    torch.testing.assert_close(out.z_q.norm(dim=1), torch.ones(30))
    torch.testing.assert_close(q.codes().norm(dim=1), torch.ones(16))


def test_rotation_trick_keeps_the_forward_value_and_rotates_the_gradient():
    torch.manual_seed(0)
    plain, rotated = vq_with(8, 3, init="normal"), vq_with(8, 3, init="normal", estimator="rotation")
    rotated.load_state_dict(plain.state_dict())
    z = torch.randn(5, 3, requires_grad=True)
    out = rotated(z)
    torch.testing.assert_close(out.z_q, plain(z).z_q)
    codes = out.z_q.detach()
    scale = codes.norm(dim=1, keepdim=True) / z.detach().norm(dim=1, keepdim=True)
    # The Jacobian is scale * R with R a rotation taking z/|z| onto z_q/|z_q|, so a gradient
    # along z_q arrives along z, scaled.
    (out.z_q * torch.nn.functional.normalize(codes, dim=1)).sum().backward()
    torch.testing.assert_close(z.grad, scale * torch.nn.functional.normalize(z.detach(), dim=1))


def test_alternating_inner_steps_move_only_the_codebook(params):
    from vqrepro.models import VQVAE, ModelSettings
    from vqrepro.train import alternating_codebook_steps, make_optimizers
    from vqrepro.training_settings import TrainingSettings

    torch.manual_seed(0)
    quantizer = vq_with(8, 4, inner_steps=2)
    model = VQVAE(1, quantizer, ModelSettings(hidden_channels=8, residual_layers=1, residual_channels=4,
                                               downsamples=1))
    schedule = TrainingSettings.from_dict(dict(params["training"]["digits_mini"], lr=0.05, betas=[0.9, 0.999]))
    _, codebook_optimizer = make_optimizers(model, schedule)
    assert codebook_optimizer is not None
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    with torch.no_grad():
        z = model.encode(images).reshape(-1, 4)
        loss_before = quantizer.alternating_loss(z).item()
    alternating_codebook_steps(model, images, codebook_optimizer)
    with torch.no_grad():
        loss_after = quantizer.alternating_loss(z).item()
    assert loss_after < loss_before
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters()))


def test_every_add_on_together_trains_with_replacements_happening():
    """LRU replacement, the affine map and l2 normalisation in one backward pass (no in-place clash)."""
    torch.manual_seed(0)
    q = vq_with(64, 4, affine="learnable", l2_normalize=True, replace_after=1, sync_nu=0.2, init="kmeans")
    optimizer = torch.optim.SGD(q.parameters(), lr=0.1)
    q.train()
    for step in range(5):
        q.begin_step(step, 0)
        z = torch.randn(32, 4, requires_grad=True)
        out = q(z)
        (out.z_q.pow(2).sum() + sum(out.losses.values())).backward()
        optimizer.step()
        optimizer.zero_grad()
        q.on_step(step)
    assert q.lru.idle_steps.max() < 1  # every code idle for a step was replaced
    assert torch.isfinite(q.codes()).all()


def test_stochastic_sampling_picks_other_codes_only_when_training_at_positive_temperature():
    torch.manual_seed(0)
    z = torch.randn(400, 4)
    hot = vq_with(16, 4, init="normal", stochastic_temperature=100.0)
    nearest = brute_force(z, hot.codes().detach())
    hot.train()
    assert (hot(z).indices != nearest).float().mean() > 0.5  # near-uniform draws over 16 codes
    hot.eval()
    assert torch.equal(hot(z).indices, nearest)  # eval: always the nearest code
    cold = vq_with(16, 4, init="normal")  # stochastic_temperature 0 (default): deterministic
    cold.load_state_dict(hot.state_dict())
    cold.train()
    assert torch.equal(cold(z).indices, nearest)


def test_stochastic_sample_follows_the_softmax_of_negative_distance_in_every_chunking():
    from vqrepro.quantizers.vq import sample_code

    torch.manual_seed(0)
    z, codebook = torch.randn(3, 2), torch.randn(5, 2)
    expected = torch.softmax(-torch.cdist(z, codebook).pow(2) / 0.5, dim=1)
    for max_elements in (1, 7, 2**22):
        counts = torch.zeros(3, 5)
        for _ in range(3000):
            counts[torch.arange(3), sample_code(z, codebook, 0.5, max_elements=max_elements)] += 1
        torch.testing.assert_close(counts / 3000, expected, atol=0.04, rtol=0)


def test_stochastic_temperature_anneals_geometrically_and_draws_are_seeded():
    import math

    q = vq_with(16, 4, stochastic_temperature=2.0, stochastic_decay=0.1)
    assert q.temperature(0) == 2.0
    assert abs(q.temperature(10) - 2.0 * math.exp(-1.0)) < 1e-12
    q.train()
    q.begin_step(5, 0)
    z = torch.randn(300, 4)
    torch.manual_seed(123)
    first = q(z)
    torch.manual_seed(123)
    second = q(z)
    assert torch.equal(first.indices, second.indices)
    assert first.stats["temperature"] == q.temperature(5)
    torch.manual_seed(124)
    assert not torch.equal(q(z).indices, first.indices)


def test_sampled_code_is_the_one_quantized_to_and_trained():
    torch.manual_seed(0)
    q = vq_with(8, 4, init="normal", stochastic_temperature=50.0)
    q.train()
    z = torch.randn(64, 4, requires_grad=True)
    out = q(z)
    torch.testing.assert_close(out.z_q, q.codebook.detach()[out.indices])
    out.losses["codebook"].backward()
    assert q.codebook.grad is not None


def test_outer_steps_setting_is_validated_and_exposed():
    from vqrepro.quantizers.vq import MAX_OUTER_STEPS

    assert vq_with(4, 2).outer_steps == 1
    assert vq_with(4, 2, outer_steps=4).outer_steps == 4
    assert vq_with(4, 2, outer_steps=MAX_OUTER_STEPS).outer_steps == MAX_OUTER_STEPS
    assert build_quantizer({"method": "ema"}, 4, 2).outer_steps == 1  # base-class default
    for bad in (0, -1, MAX_OUTER_STEPS + 1, 10**12):
        with pytest.raises(ValueError, match=rf"outer_steps: {bad} is not an integer 1\.\.{MAX_OUTER_STEPS}"):
            vq_with(4, 2, outer_steps=bad)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match=rf"outer_steps: {bad} is not an integer 1\.\.{MAX_OUTER_STEPS}"):
            vq_with(4, 2, outer_steps=bad)
    with pytest.raises(ValueError, match="stochastic_temperature"):
        vq_with(4, 2, stochastic_temperature=-1.0)


def test_inner_steps_is_0_for_joint_training_or_a_bounded_count():
    """0 is the only "off" (there is no separate switch for alternating optimisation); a count of
    10^12 would never finish a step, so counts stop at MAX_INNER_STEPS."""
    from vqrepro.quantizers.vq import MAX_INNER_STEPS, VQSettings

    assert vq_with(4, 2).inner_steps == 0
    assert vq_with(4, 2, inner_steps=0).inner_steps == 0
    assert vq_with(4, 2, inner_steps=MAX_INNER_STEPS).inner_steps == MAX_INNER_STEPS
    for bad in (-1, MAX_INNER_STEPS + 1, 10**12):
        with pytest.raises(ValueError, match=rf"inner_steps: {bad} is not 0 \(off\) or 1\.\.{MAX_INNER_STEPS}"):
            vq_with(4, 2, inner_steps=bad)
        with pytest.raises(ValueError, match="inner_steps"):  # the dataclass itself, as a library user makes it
            VQSettings(inner_steps=bad)
    for bad in (2.5, True, "1"):
        with pytest.raises(TypeError, match=rf"inner_steps: {bad!r} is not 0 \(off\) or 1\.\.{MAX_INNER_STEPS}"):
            vq_with(4, 2, inner_steps=bad)


@pytest.mark.parametrize("setting,bad", [("inner_steps", 10**12), ("inner_steps", -1), ("outer_steps", 0),
                                         ("outer_steps", 10**12), ("inner_steps", 1.5), ("inner_steps", False)])
def test_config_refuses_bad_step_counts_in_one_line_naming_the_preset_and_setting(params_copy, setting, bad):
    from vqrepro.config import ConfigError, check

    params_copy["quantizers"]["cls_alt"][setting] = bad
    with pytest.raises(ConfigError) as refused:
        check(params_copy, "params.yaml")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("params.yaml: quantizers.cls_alt: ")
    assert f"{setting}: {bad!r} is not " + ("0 (off) or 1..1000" if setting == "inner_steps" else "an integer 1..1000") \
        in message


def test_config_checks_a_preset_that_no_study_uses(params_copy):
    from vqrepro.config import ConfigError, check

    params_copy["quantizers"]["spare_alt"] = {"method": "vq", "inner_steps": 10**12}
    with pytest.raises(ConfigError, match=r"^params.yaml: quantizers.spare_alt: .*inner_steps"):
        check(params_copy, "params.yaml")
    params_copy["quantizers"]["spare_alt"]["inner_steps"] = 0  # off: joint training, accepted
    check(params_copy, "params.yaml")


def test_negative_loss_weights_and_affine_scales_are_refused():
    for setting, bad in (("commit_weight", -0.25), ("codebook_weight", -1.0), ("sync_nu", -0.2),
                         ("affine_lr_scale", 0.0), ("affine_momentum", 0.0)):
        with pytest.raises(ValueError, match=setting):
            vq_with(4, 2, **{setting: bad})
    assert vq_with(4, 2, commit_weight=0.0, sync_nu=0.0).settings.commit_weight == 0.0  # 0 drops the term


def test_table2_and_table10_classifiers_start_from_kmeans(params):
    """"All methods are initialized with K-means" (STE paper, Table 2's caption; vqtorch's examples agree)."""
    rows = {**params["reproductions"]["ste_table2_classify"]["rows"],
            **params["reproductions"]["ste_table10_alternating"]["rows"]}
    for preset in rows:
        assert build_quantizer(params["quantizers"][preset], 16, 4).settings.init == "kmeans", preset
