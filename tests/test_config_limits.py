"""Settings that cannot work are refused by the config check, before any job: sizes over the memory
limit (estimated on the meta device, so the check itself allocates nothing), layer counts that would
make the check slow, claim thresholds and paper-number factors outside their metric's range."""
import re
import resource

import pytest
import torch

from vqrepro import config, memory
from vqrepro.config import ConfigError
from vqrepro.quantizers import build_quantizer
from vqrepro.quantizers.search import DEFAULT_MAX_ELEMENTS


def refusal(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        config.check(cfg)
    message = str(err.value)
    assert message.startswith("params.yaml: ") and "\n" not in message, message
    return message


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --------------------------------------------------------------------------- memory


def test_a_billion_codes_is_refused_naming_the_codebook_sizes(params_copy):
    params_copy["studies"]["ste_recon"]["codebook_sizes"] = [10**9]
    before = peak_rss_gb()
    message = refusal(params_copy)
    assert message.startswith("params.yaml: studies.ste_recon.codebook_sizes: K = 1000000000 needs an estimated ")
    assert "for quantizer preset vq (codebook and its Adam state, D = 16), over compute.memory_limit_gb = 64" in message
    assert peak_rss_gb() - before < 2  # the 10^9 x 16 codebook was never allocated


def test_memory_limit_is_a_setting(params_copy):
    params_copy["studies"]["cvq_size"]["codebook_sizes"] = [256, 10**9]
    assert "studies.cvq_size.codebook_sizes: K = 1000000000 needs an estimated" in refusal(params_copy)
    params_copy["compute"]["memory_limit_gb"] = 4096  # a machine with that much memory may run it
    config.check(params_copy)
    params_copy["compute"]["memory_limit_gb"] = 0
    assert "compute.memory_limit_gb: 0 is less than or equal to the minimum of 0" in refusal(params_copy)


def test_the_default_grid_fits_the_default_limit(params_copy):
    assert config.memory_limit_gb(params_copy) == memory.DEFAULT_LIMIT_GB == 64
    params_copy["compute"]["memory_limit_gb"] = 1.0  # the mini grid's largest job is well under 1 GB
    config.check(params_copy)


def test_codebook_estimate_counts_weights_gradients_and_adam(params):
    """vq at K x D: the codebook is K x D float32 values, six times over (weights, gradients,
    Adam's two moments, the update's temporaries)."""
    k, d = 2**20, 16
    with torch.device("meta"):
        quantizer = build_quantizer(params["quantizers"]["vq"], k, d)
    footprint = memory.quantizer_footprint(quantizer, "vq")
    model = memory.ModelFootprint(parameters=0, buffers=0, per_sample_activations=0, tokens_per_sample=64)
    need = memory.estimate(model, footprint, "vq", k, d, 32, DEFAULT_MAX_ELEMENTS)
    assert need.quantizer_state == need.codebook_state == 4 * 6 * k * d
    assert need.code_scores == 4 * (2 * DEFAULT_MAX_ELEMENTS + k)  # one chunk of distances, not 2048 x K


def test_gumbel_and_sqvae_scores_grow_with_tokens_times_codes(params_copy):
    params_copy["studies"]["ste_recon"]["codebook_sizes"] = [2**22]
    message = refusal(params_copy)
    assert "studies.ste_recon.codebook_sizes: K = 4194304 needs an estimated" in message
    assert "quantizer preset sqvae (method sqvae scores all K codes for every token of the batch" in message


@pytest.mark.parametrize("channels", [10**12, 10**15])
def test_huge_residual_channels_are_refused_without_allocating(params_copy, channels):
    params_copy["models"]["mini_rgb32"]["residual_channels"] = channels
    before = peak_rss_gb()
    message = refusal(params_copy)
    assert re.search(r"models\.mini_rgb32: as studies\.\w+ uses it", message)
    assert "one sample's feature maps alone need an estimated" in message
    assert peak_rss_gb() - before < 2


def test_huge_lookup_dim_is_refused_naming_the_quantizer_preset(params_copy):
    params_copy["quantizers"]["vqgan_fc"]["lookup_dim"] = 10**12
    message = refusal(params_copy)
    assert re.match(r"params\.yaml: quantizers\.vqgan_fc: as studies\.nsvq_\w+ uses it "
                    r"\(K = \d+, D = \d+, batch 16\) it needs an estimated ", message)
    assert "(the quantizer's own parameters and their Adam state)" in message


@pytest.mark.parametrize(("edit", "key"), [
    (lambda cfg: cfg["models"]["mini_rgb32"].update(residual_channels=10**12, hidden_channels=10**12),
     "models.mini_rgb32 (as studies.cvq_usage_convergence uses it, D=16)"),
    (lambda cfg: cfg["models"]["mini_rgb32"].update(residual_channels=10**19), "models.mini_rgb32"),
    (lambda cfg: cfg["quantizers"]["vqgan_fc"].update(lookup_dim=10**19), "quantizers.vqgan_fc"),
], ids=["product over int64", "value over int64", "lookup_dim over int64"])
def test_sizes_past_int64_are_one_clear_line(params_copy, edit, key):
    edit(params_copy)
    message = refusal(params_copy)
    assert key in message and "these sizes make a tensor of more than 2^63 values" in message
    assert "frame #" not in message  # torch's C++ stack is left out


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda cfg: cfg["models"]["mini_rgb32"].update(residual_layers=10**9),
     "models.mini_rgb32.residual_layers: 1000000000 is greater than the maximum of 100"),
    (lambda cfg: cfg["quantizers"]["transvq"].update(depth=10**9),
     "quantizers.transvq.depth: 1000000000 layers is more than 100"),
    (lambda cfg: cfg["models"]["mini_rgb32"].update(downsamples=10**9),
     "models.mini_rgb32.downsamples: 1000000000 is greater than the maximum of 16"),
    (lambda cfg: cfg["models"]["mini_digits"].update(downsamples=4),
     "models.mini_digits.downsamples: 4 halvings of the 8x8 images of data set digits leave less than one pixel; "
     "use at most 3"),
], ids=["residual layers", "transvq depth", "downsamples", "downsamples past the image"])
def test_layer_counts_are_bounded_before_anything_is_built(params_copy, edit, expected):
    """Each layer is built in a Python loop: 10^9 of them would hang the check itself."""
    edit(params_copy)
    assert expected in refusal(params_copy)


# --------------------------------------------------------------------------- claims and paper numbers


def claim(cfg, claim_id):
    return next(c for c in cfg["claims"] if c["id"] == claim_id)


def test_usage_thresholds_must_be_fractions(params_copy):
    check = claim(params_copy, "cvq_full_usage")["check"]
    assert check["all"][0] == {"row": {"quantizer": "cvq_photo"}, "metric": "usage_train", "at_least": 0.95}
    for value, shown in ((0, "0"), (95, "95"), (1.5, "1.5")):
        check["all"][0]["at_least"] = value
        message = refusal(params_copy)
        assert (f"claims[0] (cvq_full_usage).check.all[0].at_least: {shown} cannot decide the claim: usage_train is a "
                "fraction (95% is 0.95), so a threshold must be above 0 and at most 1") in message
    check["all"][0]["at_least"] = 1
    config.check(params_copy)  # "all codes in use" is a claim


def test_thresholds_of_other_metrics_stay_in_their_range(params_copy):
    rfid = next(c for c in params_copy["claims"] if c["check"].get("metric") == "rfid")
    rfid["check"]["at_most"] = -1.0
    assert "at_most: -1.0 cannot decide the claim: rfid is positive, so a threshold must be above 0" in refusal(params_copy)


def test_usage_margin_must_be_a_fraction(params_copy):
    comparison = next(c for c in params_copy["claims"] if "higher" in c["check"] and c["check"]["metric"].startswith("usage"))
    comparison["check"]["margin"] = 5
    metric = comparison["check"]["metric"]
    assert f"margin: 5 can never separate two values of {metric}, a fraction (0 to 1)" in refusal(params_copy)


@pytest.mark.parametrize("factor", [-1.0, 0, float("inf")])
def test_paper_number_factor_must_be_positive(params_copy, factor):
    params_copy["reproductions"]["cvq_fig1_usage"]["paper_numbers"]["metrics"]["usage"] = ["codebook_usage", factor]
    assert ("reproductions.cvq_fig1_usage.paper_numbers.metrics.usage: the factor must be a positive number"
            in refusal(params_copy))


def test_percent_column_needs_the_percent_factor(params_copy):
    """ste_collapse_prevention.csv prints usage in percent: factor 1.0 would compare 98 with our 0.98."""
    metrics = params_copy["reproductions"]["ste_table1_collapse"]["paper_numbers"]["metrics"]
    assert metrics["usage"] == ["active_pct", 0.01]
    metrics["usage"] = ["active_pct", 1.0]
    message = refusal(params_copy)
    assert "reproductions.ste_table1_collapse.paper_numbers.metrics.usage: 'active_pct' times the factor 1 reaches" in message
    assert "usage is a fraction (0 to 1) in our units; a column in percent needs the factor 0.01" in message
