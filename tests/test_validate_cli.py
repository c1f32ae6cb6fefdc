"""`python -m vqrepro validate FILE ...`: the config a `snakemake --configfile FILE ...` run sees,
with YAML syntax errors located by line and column; `--version`; a bare invocation shows the help."""
import copy
import os
import subprocess
import sys

import pytest
import snakemake.utils
import yaml

from conftest import REPO
from vqrepro import __version__, layering


def vqrepro(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "vqrepro", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("scale: paper\nstudies:\n  ste_recon: {seeds: [0]\n  cvq_size: {seeds: [0]}\n")
    result = vqrepro("validate", str(broken))
    assert result.returncode == 1
    assert result.stderr == (f"vqrepro validate: error: {broken}, line 4, column 3: not valid YAML: expected ',' or '}}', "
                             "but got '<scalar>' (while parsing a flow mapping at line 3, column 14)\n")


def test_smoke_config_is_layered_on_params_yaml():
    for args in (["configs/smoke.yaml"], ["--params", "configs/smoke.yaml"]):
        result = vqrepro("validate", *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("params.yaml + configs/smoke.yaml: valid; ")
        assert "have 79 tokenizer training jobs" in result.stdout  # the smoke grid, not the mini one


def test_files_layer_in_order_and_errors_name_the_layers(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("training: {mini: {steps: -1}}\n")
    second.write_text("training: {mini: {steps: 10}}\n")
    assert vqrepro("validate", str(first), str(second)).returncode == 0
    result = vqrepro("validate", str(second), str(first))
    assert result.returncode == 1
    assert f"error: params.yaml + {second} + {first}: training.mini.steps: -1 is less than the minimum of 1" in result.stderr


def test_paper_config_without_its_data_is_valid_with_a_warning():
    result = vqrepro("validate", "configs/paper/nsvq_celebahq.yaml")
    assert result.returncode == 0, result.stderr
    assert ("vqrepro validate: warning: params.yaml + configs/paper/nsvq_celebahq.yaml: datasets.celebahq.root: "
            "data_local/celebahq is not a folder on this machine") in result.stderr


OVERRIDES = [
    {"a": {"b": 1}},
    {"a": 5},                    # a scalar replaces a mapping
    {"a": {"c": [1, 2]}},        # a mapping over a scalar starts afresh
    {"a": {}, "d": None},        # an empty mapping over a scalar leaves it
    {"l": [3], "a": {"c": {"x": 1}}},
]


@pytest.mark.parametrize("order", [OVERRIDES, OVERRIDES[::-1], OVERRIDES[1:4]])
def test_layering_matches_snakemakes_update_config(order, tmp_path):
    base = {"a": {"b": 0, "e": 1}, "l": [1, 2], "d": {"k": 1}}
    expected, override = copy.deepcopy(base), {}
    for layer in order:  # what snakemake does: the --configfile files into one override, then onto the Snakefile's
        snakemake.utils.update_config(override, copy.deepcopy(layer))
    snakemake.utils.update_config(expected, override)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base))
    files = []
    for i, layer in enumerate(order):
        files.append(tmp_path / f"{i}.yaml")
        files[-1].write_text(yaml.safe_dump(layer))
    config, _ = layering.layered(files, tmp_path / "params.yaml")
    assert config == expected


def test_version_and_bare_invocation():
    version = vqrepro("--version")
    assert version.returncode == 0 and version.stdout == f"vqrepro {__version__}\n"
    bare = vqrepro()
    assert bare.returncode == 2
    assert bare.stdout.startswith("usage: vqrepro [-h] [--version]")
    assert "Reproduction pipeline for codebook collapse in VQ." in bare.stdout and "validate" in bare.stdout
