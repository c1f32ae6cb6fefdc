"""End to end: the real Snakefile on a tiny config in a temporary directory."""
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
# Rules call `python -m vqrepro`: make it this interpreter even if the venv is not activated.
ENV = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}


def tiny_params(params: dict) -> dict:
    cfg = yaml.safe_load(yaml.safe_dump(params))
    cfg["run_studies"] = ["tiny"]
    cfg["training"]["tiny"] = dict(cfg["training"]["digits_mini"], steps=30, batch_size=32, log_every=10, checkpoint_every=10)
    cfg["models"]["tiny"] = dict(cfg["models"]["mini_digits"], hidden_channels=16, residual_channels=8)
    cfg["studies"] = {"tiny": {
        "title": "Tiny end-to-end study", "dataset": "digits", "model": "tiny", "training": "tiny",
        "quantizers": ["vq", "ema"], "codebook_sizes": [8, 16], "code_dims": [4], "seeds": [0, 1],
    }}
    cfg["run_generation_studies"] = ["tiny_generation"]
    cfg["priors"] = {name: dict(cfg["priors"][name], steps=20, snapshot_every=10, checkpoint_every=10, log_every=5,
                                num_samples=20, layers=1, width=16) for name in ("gpt_mini", "maskgit_mini")}
    cfg["classifiers"]["digits_cnn"]["steps"] = 20
    cfg["reproductions"], cfg["claims"], cfg["toys"] = {}, [], {}  # the papers' tables: tests/test_smoke.py
    cfg["generation_studies"] = {"tiny_generation": {
        "title": "Tiny stage 2", "tokenizer_study": "tiny", "quantizers": ["vq", "ema"], "codebook_sizes": [16],
        "code_dims": [4], "tokenizer_seeds": [0], "priors": ["gpt_mini", "maskgit_mini"], "seeds": [0],
        "classifier": "digits_cnn",
    }}
    return cfg


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True, cwd=workdir, env=ENV)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) not in ("total", "job", "count"):
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("workflow")
    (path / "params.yaml").write_text(yaml.safe_dump(tiny_params(params)))
    return path


def test_dry_run_plans_one_training_job_per_grid_point(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result)
    assert jobs["train_tokenizer"] == 2 * 2 * 1 * 2
    assert "eval_tokenizer" not in jobs  # evaluation runs inside each training job (one process per grid point)
    assert jobs["prepare_data"] == 1 and jobs["study_report"] == 1
    assert jobs["train_prior"] == 4 and jobs["encode_tokens"] == 4 and jobs["train_feature_classifier"] == 1
    assert jobs["sample_prior"] == 4 and jobs["eval_generation"] == 4 and jobs["generation_report"] == 1


def test_full_run_writes_the_study_table(workdir):
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (workdir / "results" / "tables" / "tiny.md").read_text()
    assert "| Quantizer | K | D | Seeds | MSE (1e-3) |" in table
    rows = [line for line in table.splitlines() if line.startswith("| vq") or line.startswith("| ema")]
    assert len(rows) == 4
    assert all(" ± " in row for row in rows)  # two seeds -> mean ± std
    assert "n/a (lpips): images are 8x8" in table  # honest n/a with the reason
    with open(workdir / "results" / "tables" / "tiny.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {(r["quantizer"], r["codebook_size"]) for r in summary} == {("vq", "8"), ("vq", "16"), ("ema", "8"), ("ema", "16")}
    for r in summary:
        assert 0 < float(r["usage_mean"]) <= 1 and float(r["mse_mean"]) > 0 and r["seeds"] == "2"
    for suffix in (".png", ".pdf"):
        assert (workdir / "results" / "figures" / f"tiny_usage_vs_codebook_size{suffix}").stat().st_size > 1000
    assert (workdir / "results" / "tables" / "tiny.tex").read_text().startswith(r"\begin{table}")


def test_full_run_writes_the_stage_two_table_and_sample_grid(workdir):
    table = (workdir / "results" / "tables" / "tiny_generation.md").read_text()
    assert "| Quantizer | K | D | Prior | Seeds | Bits/token |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| vq", "| ema"))]
    assert len(rows) == 4 and any("gpt_mini" in r for r in rows) and any("maskgit_mini" in r for r in rows)
    assert "n/a (gfid)" in table and "not comparable with FID" in table
    for stem in ("tiny_generation_samples", "tiny_generation_quality_over_training"):
        assert (workdir / "results" / "figures" / f"{stem}.png").stat().st_size > 1000
    with open(workdir / "results" / "tables" / "tiny_generation.csv") as handle:
        for r in csv.DictReader(handle):
            assert 0 < float(r["bits_per_token_mean"]) and 0 < float(r["sample_usage_mean"]) <= 1
            assert float(r["fd_classifier_mean"]) >= 0


def test_editing_one_preset_reruns_only_its_jobs(workdir):
    assert planned_jobs(snakemake(workdir, "-n")).get("train_tokenizer", 0) == 0  # up to date
    cfg = yaml.safe_load((workdir / "params.yaml").read_text())
    cfg["quantizers"]["ema"]["decay"] = 0.95
    (workdir / "params.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(workdir, "-n")
    jobs = planned_jobs(result)
    assert jobs["train_tokenizer"] == 4, result.stdout
    planned = re.findall(r"quantizer=(\w+), point", result.stdout)
    assert planned and set(planned) == {"ema"}


def test_editing_sampling_settings_resamples_without_retraining(workdir, params):
    cfg = tiny_params(params)  # undo the previous test's edit: everything is up to date again
    (workdir / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert planned_jobs(snakemake(workdir, "-n")) == {}
    cfg["priors"]["gpt_mini"]["temperature"] = 0.8
    (workdir / "params.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake(workdir, "-n"))
    assert "train_prior" not in jobs and "train_tokenizer" not in jobs
    assert jobs["sample_prior"] == 2 and jobs["eval_generation"] == 2  # gpt_mini on the two tokenizers


def test_committed_results_do_not_stand_in_for_a_run(workdir):
    """A fresh clone has results/ from git but no runs/: the default target still trains and reports."""
    moved = workdir.parent / "runs-aside"
    (workdir / "runs").rename(moved)
    try:
        jobs = planned_jobs(snakemake(workdir, "-n"))
        assert jobs.get("train_tokenizer") == 8 and jobs.get("study_report") == 1
        assert jobs.get("train_prior") == 4
    finally:
        shutil.rmtree(workdir / "runs", ignore_errors=True)
        moved.rename(workdir / "runs")


MADE_UP_PAPER = """\
paper: Made-Up VQ
title: "A made-up paper: EMA codebooks use more codes than plain VQ"
published: []
reproductions:
  madeup_table1:
    reproduces: "Table 1: codebook usage of VQ and EMA"
    study: tiny
    rows: {vq: VQ, ema: EMA}
    select: {codebook_size: [16]}
    metrics: [usage, mse]
    figure: {kind: bars, y: [usage]}
claims:
  - id: madeup_ema_uses_more
    statement: "EMA uses more of the codebook than plain VQ"
    reproduction: madeup_table1
    check: {metric: usage, higher: [{quantizer: ema}, {quantizer: vq}]}
"""


def test_a_new_paper_is_one_catalogue_file(workdir, params, tmp_path):
    """README "Adding a paper": one file with a reproduction and a claim over an existing study, listed
    under papers:, and the real Snakefile builds its table, its comparison page and its claim."""
    catalogue = tmp_path / "madeup.yaml"
    catalogue.write_text(MADE_UP_PAPER)
    cfg = tiny_params(params)
    cfg["papers"] = [str(catalogue)]
    (workdir / "params.yaml").write_text(yaml.safe_dump(cfg))
    try:
        result = snakemake(workdir, "results/tables/madeup_table1.md", "results/claims.md", "--cores", "2")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "rule train_tokenizer:" not in result.stdout  # the study's runs are reused as they are
        table = (workdir / "results" / "tables" / "madeup_table1.md").read_text()
        assert "| EMA |" in table and "| VQ |" in table
        claims = (workdir / "results" / "claims.md").read_text()
        assert "## Made-Up VQ" in claims and "(`madeup_ema_uses_more`)" in claims
        assert (workdir / "results" / "paper_vs_repro" / "madeup_table1.md").exists()
        # A fault in the file is reported against the file and its own key.
        catalogue.write_text(MADE_UP_PAPER.replace("study: tiny", "study: tiny_typo"))
        refused = snakemake(workdir, "-n")
        assert refused.returncode != 0
        assert f"{catalogue}: reproductions.madeup_table1.study: unknown study 'tiny_typo'" in refused.stderr
    finally:
        (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(params)))


def test_renaming_a_study_moves_its_runs_and_retrains_nothing(workdir, params):
    """scripts/rename_studies.py: after a study is renamed in params.yaml, its runs, results and Snakemake's
    records move with it, and `snakemake -n` has nothing to do (a rename is not new science)."""
    renamed = tiny_params(params)
    renamed["studies"] = {"tiny_renamed": renamed["studies"].pop("tiny")}
    renamed["run_studies"] = ["tiny_renamed"]
    renamed["generation_studies"]["tiny_generation"]["tokenizer_study"] = "tiny_renamed"
    assert snakemake(workdir, "--cores", "2").returncode == 0  # up to date under the old name (claims after the test above)
    assert planned_jobs(snakemake(workdir, "-n")) == {}
    (workdir / "params.yaml").write_text(yaml.safe_dump(renamed))
    try:
        unmoved = planned_jobs(snakemake(workdir, "-n"))  # without the move: trained runs shared, readings and stage 2 redone
        assert "train_tokenizer" not in unmoved and unmoved.get("read_tokenizer_run") == 8, unmoved
        assert unmoved.get("train_prior") == 4
        moved = subprocess.run([sys.executable, str(REPO / "scripts" / "rename_studies.py"), "tiny=tiny_renamed"],
                               capture_output=True, text=True, cwd=workdir)
        assert moved.returncode == 0, moved.stderr
        after = snakemake(workdir, "-n")
        assert planned_jobs(after) == {}, after.stdout[-3000:]
        assert (workdir / "runs" / "tiny_renamed").is_dir() and not (workdir / "runs" / "tiny").exists()
        assert (workdir / "results" / "tables" / "tiny_renamed.md").exists()
        assert (workdir / "results" / "tables" / "tiny_generation.md").exists()  # another name that starts alike
    finally:  # back to the old name for the tests below
        subprocess.run([sys.executable, str(REPO / "scripts" / "rename_studies.py"), "tiny_renamed=tiny"],
                       capture_output=True, text=True, cwd=workdir, check=True)
        (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(params)))


def test_invalid_config_stops_before_any_job(workdir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = yaml.safe_load((workdir / "params.yaml").read_text())
    cfg["studies"]["tiny"]["codebook_sizes"] = [8, 0]
    (bad / "params.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(bad, "--cores", "1")
    assert result.returncode != 0
    assert "studies.tiny.codebook_sizes[1]" in result.stdout + result.stderr
    assert not (bad / "results").exists() and not (bad / "data").exists()


def test_workflow_lints_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


PAPER_CONFIGS = sorted((REPO / "configs" / "paper").glob("*.yaml"))


def with_local_data(config: Path, tmp_path: Path) -> Path:
    """An extra --configfile pointing every data set root of ``config`` at an (empty) local folder."""
    roots = {name: {"root": str(tmp_path / name)} for name, ds in (yaml.safe_load(config.read_text()).get("datasets") or {}).items()}
    for name in ("imagenet", "celebahq", "ffhq", "celeba"):  # paper-scale data sets named in params.yaml itself
        roots.setdefault(name, {"root": str(tmp_path / name)})
    for entry in roots.values():
        Path(entry["root"]).mkdir(parents=True, exist_ok=True)
    override = tmp_path / "local_data.yaml"
    override.write_text(yaml.safe_dump({"datasets": roots}))
    return override


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_scale_config_plans_gpu_jobs(config, tmp_path):
    override = with_local_data(config, tmp_path)
    result = subprocess.run([*SNAKEMAKE, "-n", "--configfile", str(config), str(override)],
                            capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["train_tokenizer"] > 0 and "eval_tokenizer" not in jobs
    train_blocks = [block for block in result.stdout.split("\n\n") if "rule train_tokenizer:" in block]
    assert train_blocks and all("gpu=1" in block for block in train_blocks)
    assert "scale: paper" in config.read_text()


def without_local_data(tmp_path: Path) -> Path:
    """A working directory with the repository's params.yaml and none of the paper data sets."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


NSVQ_CELEBAHQ = REPO / "configs" / "paper" / "nsvq_celebahq.yaml"
CELEBAHQ_MISSING = ("datasets.celebahq.root: data_local/celebahq is not a folder on this machine, and "
                    "studies.nsvq_grid needs celebahq; point it at the data set's folder")


def test_paper_scale_dry_run_plans_without_its_data_and_warns(tmp_path):
    workdir = without_local_data(tmp_path)
    result = snakemake(workdir, "-n", "--configfile", str(NSVQ_CELEBAHQ))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"vqrepro: warning: params.yaml (with any --configfile overrides): {CELEBAHQ_MISSING}" in result.stderr
    jobs = planned_jobs(result)
    assert jobs["train_tokenizer"] > 0 and jobs["prepare_data"] == 1
    assert not (workdir / "data").exists()


def test_paper_scale_real_run_without_its_data_stops_before_any_job(tmp_path):
    workdir = without_local_data(tmp_path)
    # the target first: --configfile takes every name after it
    result = snakemake(workdir, "data/celebahq/info.json", "--cores", "1", "--configfile", str(NSVQ_CELEBAHQ))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"vqrepro: invalid configuration: params.yaml (with any --configfile overrides): {CELEBAHQ_MISSING}" in output
    assert "warning" not in output and "rule prepare_data" not in output
    assert not (workdir / "data").exists() and not (workdir / "logs").exists()
