"""The smoke scale end to end: every study, every rule of the DAG, a few steps each (configs/smoke.yaml).

One run of the real Snakefile in a temporary directory; then the report, the outputs of every
paper table and figure, the claims and a second run that has nothing to do.
"""
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO
from test_workflow import ENV, SNAKEMAKE

SMOKE = REPO / "configs" / "smoke.yaml"


def run(workdir, *args):
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(SMOKE), *args],
                          capture_output=True, text=True, cwd=workdir, env=ENV)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    result = run(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir, result.stdout + result.stderr


def config():
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    smoke = yaml.safe_load(SMOKE.read_text())
    return cfg, smoke


def test_every_rule_of_the_dag_ran(smoke):
    _, log = smoke
    listed = subprocess.run([*SNAKEMAKE, "--list-rules"], capture_output=True, text=True, cwd=REPO, env=ENV)
    rules = {line.strip() for line in listed.stdout.splitlines() if re.fullmatch(r"\s*\w+", line)}
    ran = set(re.findall(r"^(?:local)?rule (\w+):", log, flags=re.MULTILINE))
    assert rules and rules <= ran | {"all"}, f"rules that never ran at smoke scale: {sorted(rules - ran)}"


def test_every_paper_table_and_figure_is_built(smoke):
    workdir, _ = smoke
    cfg, _ = config()
    built = [name for name, spec in cfg["reproductions"].items() if spec["study"] in cfg["run_studies"]]
    assert len(built) >= 15
    for name in built:
        for path in (f"tables/{name}.md", f"tables/{name}.tex", f"tables/{name}.csv", f"figures/{name}_figure.png",
                     f"figures/{name}_figure.pdf", f"paper_vs_repro/{name}.md", f"metrics/{name}.json"):
            assert (workdir / "results" / path).stat().st_size > 0, path
        comparison = (workdir / "results" / "paper_vs_repro" / f"{name}.md").read_text()
        assert "Measured at smoke scale" in comparison or "smoke scale" in comparison
    table3 = (workdir / "results" / "tables" / "ste_table3.md").read_text()
    assert "| VQVAE + Affine + OPT + replace + l2 |" in table3  # the paper's row names, in its order
    assert "n/a (lpips)" in table3  # honest n/a with the reason


def test_claims_name_the_scale_and_a_status_for_every_claim(smoke):
    workdir, _ = smoke
    cfg, _ = config()
    claims = (workdir / "results" / "claims.md").read_text()
    assert "**smoke** scale" in claims
    statuses = re.findall(r"\| (reproduced|not reproduced|not measurable here) \|", claims)
    assert len(statuses) == len(cfg["claims"])
    assert "ImageNet-1K is not bundled" in claims  # a paper-scale-only claim says why
    index = (workdir / "results" / "paper_vs_repro" / "index.md").read_text()
    assert "[cvq_fig1_usage.md](cvq_fig1_usage.md)" in index
    assert "supplementary Table 12: ImageNet-1K reconstruction | not built at smoke scale" in index


def test_toys_write_figures_and_metrics(smoke):
    workdir, _ = smoke
    cfg, _ = config()
    for toy in cfg["toys"]:
        assert (workdir / "results" / "figures" / f"toy_{toy}.png").exists()
        assert (workdir / "results" / "metrics" / f"toy_{toy}.json").exists()


def test_second_run_has_nothing_to_do(smoke):
    workdir, _ = smoke
    result = run(workdir, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_snakemake_report_bundles_the_reproductions(smoke):
    workdir, _ = smoke
    result = run(workdir, "--report", "results/report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (workdir / "results" / "report.html").read_text(errors="replace")
    assert "Reproductions" in report and "Claims" in report


def test_the_run_ends_with_what_it_built(smoke):
    """onsuccess prints the summary: tables, figures, claim counts, where to look."""
    workdir, log = smoke
    summary = log[log.index("vqrepro: finished at smoke scale"):]
    counts = yaml.safe_load((workdir / "results" / "metrics" / "claims.json").read_text())["all"]
    assert re.search(r"tables: (\d+) of \1 in results/tables/", summary)
    assert (f"claims: {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts['not measurable here']} not measurable here") in summary
    assert "snakemake --report results/report.html" in summary
