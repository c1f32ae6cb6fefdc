"""Every paper config, end to end: the real Snakefile on its rehearsal (vqrepro/rehearsal.py).

`python -m vqrepro rehearse` writes stand-in data in each paper data set's published layout and a
few-step config per configs/paper/*.yaml, at the paper's architecture and image size. Each is run
through the whole DAG (preparation, training, evaluation, tables, comparisons, claims) on CPU,
in its own workdir, next to a stand-in for the committed mini results that must stay untouched.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_workflow import ENV, SNAKEMAKE

PAPER_CONFIGS = sorted((REPO / "configs" / "paper").glob("*.yaml"))
COMMITTED_CLAIMS = "# the committed mini claims page: no paper config may touch it\n"


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """A launch folder with a mini results/ of its own and every rehearsal config written."""
    folder = tmp_path_factory.mktemp("rehearsal")
    (folder / "results").mkdir()
    (folder / "results" / "claims.md").write_text(COMMITTED_CLAIMS)
    (folder / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = subprocess.run([sys.executable, "-m", "vqrepro", "rehearse", *map(str, PAPER_CONFIGS)],
                            capture_output=True, text=True, cwd=folder, env=ENV)
    assert result.returncode == 0, result.stderr
    return folder


def rules_planned(folder: Path, config: Path) -> set[str]:
    plan = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(config)], capture_output=True, text=True,
                          cwd=folder, env=ENV)
    assert plan.returncode == 0, plan.stderr[-3000:]
    return set(re.findall(r"^rule (\w+):", plan.stdout, flags=re.MULTILINE)) - {"all"}


@pytest.mark.parametrize("paper_config", PAPER_CONFIGS, ids=[p.stem for p in PAPER_CONFIGS])
def test_a_paper_config_runs_end_to_end_on_standin_data(launch, paper_config):
    config = launch / "scales" / "rehearsal" / "configs" / f"{paper_config.stem}.yaml"
    cfg = yaml.safe_load(config.read_text())
    planned = rules_planned(launch, config)
    run = subprocess.run([*SNAKEMAKE, "--cores", "2", "--configfile", str(config)], capture_output=True, text=True,
                         cwd=launch, env=ENV)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", log, flags=re.MULTILINE))
    assert {"prepare_data", "train_tokenizer", "study_report", "claims"} <= planned
    assert planned <= ran, f"rules planned but not run: {sorted(planned - ran)}"

    place = launch / cfg["workdir"]
    assert cfg["workdir"] == f"scales/rehearsal/{paper_config.stem}"
    claims = (place / "results" / "claims.md").read_text()
    assert "This run is at **paper** scale" in claims
    # Claims of the papers this config does not run are listed apart, outside the counts.
    built = {name for name, spec in cfg["reproductions"].items() if spec["study"] in cfg["run_studies"]}
    if len(built) < len(cfg["reproductions"]):
        assert "## Not run in this configuration" in claims
    for name in built:
        assert (place / "results" / "tables" / f"{name}.md").stat().st_size > 0
        assert (place / "results" / "paper_vs_repro" / f"{name}.md").stat().st_size > 0
    summary = log[log.rindex("vqrepro: finished"):]
    assert f"at paper scale in {cfg['workdir']}/" in summary
    # Nothing outside its workdir: the launch folder's (committed) results are as they were.
    assert (launch / "results" / "claims.md").read_text() == COMMITTED_CLAIMS
    assert not (launch / "runs").exists() and not (launch / "data").exists()
    assert sorted(p.name for p in (launch / "results").iterdir()) == ["claims.md"]
