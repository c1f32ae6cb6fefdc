"""Quantizers used as a library: the documented examples run, and every method has the same surface."""
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from vqrepro import quantizers
from vqrepro.quantizers import REGISTRY, create


def python_block(markdown: str, heading: str) -> str:
    """The first ```python block after ``heading``."""
    section = markdown[markdown.index(heading):]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


def test_readme_example_trains_a_quantizer_in_a_model_of_ones_own():
    namespace = {}
    exec(python_block((REPO / "README.md").read_text(), "## Using a quantizer in your own model"), namespace)
    assert namespace["indices"].shape == (1797, 4, 4)
    # CVQ-VAE's point: its online re-initialisation keeps the 64 codes in use.
    assert namespace["usage"] >= 0.9, namespace["usage"]


def test_methods_doc_example_runs():
    exec(python_block((REPO / "docs" / "methods.md").read_text(), "# Quantizer methods"), {})


def test_importing_the_quantizers_loads_neither_snakemake_nor_dvc():
    probe = "import sys, vqrepro.quantizers; print(sorted(m for m in sys.modules if m.split('.')[0] in ('snakemake', 'dvc')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_by_name_and_class_with_both_layouts(method):
    torch.manual_seed(0)
    by_class = REGISTRY[method](codebook_size=1024, code_dim=4)
    torch.manual_seed(0)
    by_name = create(method, 1024, 4)
    assert by_class.settings == REGISTRY[method].Settings()  # the paper defaults
    for a, b in zip(by_class.state_dict().values(), by_name.state_dict().values()):
        assert torch.equal(a, b)
    assert getattr(quantizers, REGISTRY[method].__name__) is REGISTRY[method]

    fmap = torch.randn(2, 4, 3, 5)
    by_class.eval()
    with torch.no_grad():
        first = by_class(fmap, dim=1)
        last = by_class(fmap.movedim(1, -1))
    assert first.z_q.shape == fmap.shape and first.indices.shape == (2, 3, 5)
    assert torch.equal(first.indices, last.indices)
    torch.testing.assert_close(first.z_q, last.z_q.movedim(-1, 1))

    by_class.train()
    out = by_class(fmap, dim=1)
    assert out.loss.shape == ()
    expected = sum(out.losses.values()) if out.losses else torch.zeros(())
    torch.testing.assert_close(out.loss, expected)
    by_class.advance()
    by_class.advance(epoch=1)
    assert (by_class.step, by_class.epoch) == (2, 1)


def test_keyword_settings_are_checked_like_params_yaml():
    quantizer = create("cvq", codebook_size=64, code_dim=8, decay=0.9)
    assert quantizer.settings.decay == 0.9
    with pytest.raises(KeyError, match="unknown setting.*'decai'"):
        create("cvq", 64, 8, decai=0.9)
    with pytest.raises(TypeError, match="not both"):
        REGISTRY["cvq"](64, 8, REGISTRY["cvq"].Settings(), decay=0.9)
    with pytest.raises(ValueError, match="dim=1"):
        quantizer(torch.randn(2, 8, 4, 4))  # a channels-first map without dim=1
