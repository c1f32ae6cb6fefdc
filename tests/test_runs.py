"""A run's identity has one home (vqrepro/runs.py): the rules, the loop and the report build paths from it."""
import re
import subprocess
import sys
from types import SimpleNamespace

from conftest import REPO
from vqrepro import config, runs


def test_a_key_and_the_rules_wildcard_pattern_name_the_same_folder(params):
    for study in params["run_studies"]:
        for key in config.grid(params, study):
            wildcards = SimpleNamespace(study=key.study, dataset=key.dataset, quantizer=key.quantizer,
                                        point=key.point, seed=str(key.seed))
            assert runs.TOKENIZER_RUN.format(**vars(wildcards)) == key.path
            assert re.fullmatch(runs.POINT_PATTERN, key.point)
            assert runs.RunKey.from_wildcards(wildcards) == key
            assert key.file(runs.METRICS) == f"runs/{key.path}/metrics.json"


def test_a_prior_folder_sits_below_its_tokenizer_run(params):
    for study in params["run_generation_studies"]:
        for key in config.generation_grid(params, study):
            assert key.path == runs.PRIOR_RUN.format(
                study=key.tokenizer.study, dataset=key.tokenizer.dataset, quantizer=key.tokenizer.quantizer,
                point=key.tokenizer.point, seed=key.tokenizer.seed, prior=key.prior, prior_seed=key.seed)


def test_no_rule_spells_out_a_run_path():
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        literal = [line for line in rules.read_text().splitlines() if re.search(r"[\"']runs/|/seed\{seed\}", line)]
        assert not literal, f"{rules.name} spells out run paths (build them with vqrepro.runs): {literal}"


def test_the_snakefile_reads_runs_without_torch():
    """The Snakefile imports vqrepro.runs at parse time: it must stay light."""
    code = "import sys, vqrepro.runs, vqrepro.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
