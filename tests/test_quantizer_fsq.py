"""Defining properties of FSQ (vqrepro/quantizers/fsq.py).

The cross-check against vector-quantize-pytorch is skipped when that test extra is not
installed; every other test needs torch only.
"""
import math

import pytest
import torch

from vqrepro.quantizers.fsq import RECOMMENDED_LEVELS, FSQQuantizer
from conftest import make


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [3, 4], [7, 6, 5]])
def test_fsq_outputs_lie_on_the_grid_and_indices_are_a_bijection(levels):
    k, d = math.prod(levels), len(levels)
    q = make(FSQQuantizer, k, d, levels=levels)
    torch.manual_seed(0)
    z = torch.randn(20_000, d) * 3
    out = q(z)
    for i, l in enumerate(levels):
        allowed = (torch.arange(l) - l // 2).float() / (l // 2)
        assert torch.isin(out.z_q[:, i], allowed).all()
        assert len(out.z_q[:, i].unique()) == l  # every level is reachable
    all_points = q.lookup(torch.arange(k))
    assert len(torch.unique(all_points, dim=0)) == k  # K distinct grid points
    assert torch.equal(q.grid_to_indices(all_points), torch.arange(k))  # index <-> point round trip
    torch.testing.assert_close(q.lookup(out.indices), out.z_q)
    assert q(torch.zeros(1, d)).z_q.abs().max() == 0  # the bound is zero-centred


def test_fsq_gradient_is_straight_through_the_rounding():
    q = make(FSQQuantizer, 1000, 4, levels=[8, 5, 5, 5])
    z = torch.randn(64, 4, requires_grad=True)
    upstream = torch.randn(64, 4)
    (q(z).z_q * upstream).sum().backward()
    zz = z.detach().requires_grad_(True)
    ((q.bound(zz) / q._half_width) * upstream).sum().backward()  # the same map without rounding
    torch.testing.assert_close(z.grad, zz.grad)
    assert (z.grad != 0).all()


def test_fsq_projects_when_dimensions_differ_and_has_no_loss():
    torch.manual_seed(0)
    q = make(FSQQuantizer, 1000, 16)
    assert q.levels == [8, 5, 5, 5] and isinstance(q.project_in, torch.nn.Linear)
    out = q(torch.randn(10, 16))
    assert out.losses == {} and out.z_q.shape == (10, 16)
    grid = q.quantize_grid(q.project_in(torch.randn(10, 16)))
    torch.testing.assert_close(q.project_out(grid), q.lookup(q.grid_to_indices(grid)))
    assert len(torch.unique(q.codes(), dim=0)) == 1000


def test_fsq_levels_from_the_paper_table_and_clear_errors():
    for target, levels in RECOMMENDED_LEVELS.items():
        assert make(FSQQuantizer, math.prod(levels), 4).levels == levels
        if math.prod(levels) <= target:
            assert make(FSQQuantizer, target, 4).levels == levels
    q = make(FSQQuantizer, 1024, 4)
    assert q.num_codes == 1000 and q(torch.randn(5000, 4) * 3).indices.max() < 1000
    with pytest.raises(ValueError, match="4375 > 4096"):  # the paper's 2^12 levels overflow K = 4096
        make(FSQQuantizer, 4096, 4)
    with pytest.raises(ValueError, match="levels.*K = 100"):
        make(FSQQuantizer, 100, 4)
    with pytest.raises(ValueError, match="levels.*must equal the codebook size K = 64"):
        make(FSQQuantizer, 64, 4, levels=[8, 5, 5, 5])
    with pytest.raises(ValueError, match="levels"):
        make(FSQQuantizer, 8, 4, levels=[2, 2, 2])


def test_fsq_levels_left_out_mean_the_paper_table_and_an_empty_list_is_refused():
    """``levels: []`` read as "use the paper's table" hid a typo; not given is null (or left out)."""
    from vqrepro.quantizers.fsq import FSQSettings

    assert FSQSettings().levels is None
    assert make(FSQQuantizer, 1000, 4, levels=None).levels == [8, 5, 5, 5]
    for bad in ([], [8, 2], [8, True, 5]):
        with pytest.raises(ValueError, match="levels"):
            make(FSQQuantizer, 1000, 4, levels=bad)
        with pytest.raises(ValueError, match="levels"):
            FSQSettings(levels=bad)
    with pytest.raises(ValueError, match=r"\[\] gives no channel; leave it out \(or null\)"):
        FSQQuantizer.settings_from({"levels": []})
    with pytest.raises(TypeError, match="levels"):
        FSQQuantizer.settings_from({"levels": "8,5,5,5"})


def test_config_refuses_empty_levels_naming_the_preset(params_copy):
    from vqrepro.config import ConfigError, check

    params_copy["quantizers"]["fsq"]["levels"] = []
    with pytest.raises(ConfigError) as refused:
        check(params_copy, "params.yaml")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("params.yaml: quantizers.fsq: ") and "'levels'" in message
    params_copy["quantizers"]["fsq"]["levels"] = None  # the paper's levels for the zoo's K = 1024: [8, 5, 5, 5]
    check(params_copy, "params.yaml")


def test_fsq_grid_and_indices_match_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    ref = vqp.FSQ(levels=[8, 5, 5, 5])
    ours = make(FSQQuantizer, 1000, 4)
    torch.testing.assert_close(ref.implicit_codebook, ours.indices_to_grid(torch.arange(1000)))
    grid = ours.indices_to_grid(torch.arange(1000))
    assert torch.equal(ref.codes_to_indices(grid[None, :, None, :])[0, :, 0].long(), torch.arange(1000))
