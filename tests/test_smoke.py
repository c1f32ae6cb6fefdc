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
from vqrepro.config import load

SMOKE = REPO / "configs" / "smoke.yaml"
PLACE = "scales/smoke"  # configs/smoke.yaml's workdir: the launch folder's own results stay untouched


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
    cfg = load(REPO / "params.yaml")  # with the papers' catalogues merged in
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
            assert (workdir / PLACE / "results" / path).stat().st_size > 0, path
        comparison = (workdir / PLACE / "results" / "paper_vs_repro" / f"{name}.md").read_text()
        assert "Measured at smoke scale" in comparison or "smoke scale" in comparison
    table3 = (workdir / PLACE / "results" / "tables" / "ste_table3.md").read_text()
    assert "| VQVAE + Affine + OPT + replace + l2 |" in table3  # the paper's row names, in its order
    assert "n/a (lpips)" in table3  # honest n/a with the reason


def test_claims_name_the_scale_and_a_status_for_every_claim(smoke):
    workdir, _ = smoke
    cfg, _ = config()
    claims = (workdir / PLACE / "results" / "claims.md").read_text()
    assert "**smoke** scale" in claims
    statuses = re.findall(r"\| (reproduced|not reproduced|inconclusive|not measurable here) \|", claims)
    assert len(statuses) == len(cfg["claims"])
    assert "ImageNet-1K is not bundled" in claims  # a paper-scale-only claim says why
    index = (workdir / PLACE / "results" / "paper_vs_repro" / "index.md").read_text()
    assert "[cvq_fig1_usage.md](cvq_fig1_usage.md)" in index
    assert "supplementary Table 12: ImageNet-1K reconstruction | not run in this configuration" in index


def test_toys_write_figures_and_metrics(smoke):
    workdir, _ = smoke
    cfg, _ = config()
    for toy in cfg["toys"]:
        assert (workdir / PLACE / "results" / "figures" / f"toy_{toy}.png").exists()
        assert (workdir / PLACE / "results" / "metrics" / f"toy_{toy}.json").exists()


def test_second_run_has_nothing_to_do(smoke):
    workdir, _ = smoke
    result = run(workdir, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_every_markdown_result_has_an_html_page(smoke):
    """The report shows HTML in place (Markdown only as a download): each .md has its page."""
    workdir, _ = smoke
    pages = sorted((workdir / PLACE / "results").rglob("*.md"))
    assert len(pages) > 30
    for page in pages:
        html = page.with_suffix(".html").read_text()
        assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html, page
        if "|---|" in page.read_text():
            assert "<table>" in html and "<th>" in html, f"{page}: its table was not rendered"
    claims = (workdir / PLACE / "results" / "claims.html").read_text()
    # one seed per run at smoke scale: every measurable claim is inconclusive there, rendered like any status
    assert re.search(r"<td>(reproduced|not reproduced|inconclusive)</td>", claims)


def test_snakemake_report_shows_every_table_and_says_what_the_run_was(smoke):
    workdir, _ = smoke
    result = run(workdir, "--report", "results/report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (workdir / PLACE / "results" / "report.html").read_text(errors="replace")
    for category in ("Claims", "Reproductions", "Paper vs reproduction", "Studies", "Convergence", "Generation"):
        assert category in report, category
    # every table, comparison and the claims page is a report item (embedded, listed by its name)
    for page in sorted((workdir / PLACE / "results").rglob("*.md")):
        name = page.with_suffix(".html").name
        assert name in report, f"{name} is not in the report"
    # the front page: what was run, at which scale, and the claims' verdicts
    counts = yaml.safe_load((workdir / PLACE / "results" / "metrics" / "claims.json").read_text())["all"]
    assert "<strong>smoke</strong> scale" in report
    assert (f"{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts['inconclusive']} inconclusive, {counts['not measurable here']} not measurable here") in report


def test_a_changed_setting_is_named_by_its_file_not_dumped(smoke, tmp_path):
    """Snakemake prints changed params in each job's reason line: a settings file name, not the JSON slice."""
    workdir, _ = smoke
    changed = tmp_path / "changed.yaml"
    changed.write_text("training:\n  digits_mini: {steps: 5}\n")
    result = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "-n", "--configfile", str(SMOKE), str(changed)],
                            capture_output=True, text=True, cwd=workdir, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    reasons = [line for line in (result.stdout + result.stderr).splitlines() if "Params have changed" in line]
    assert reasons, "changing training.digits_mini.steps re-ran nothing"
    for line in reasons:
        assert len(line) < 400 and re.search(r"\.snakemake/vqrepro/settings/[0-9a-f]{16}\.json", line), line
    # the named file holds the job's settings, with the change
    new = re.findall(r"now: '([^']+)'", reasons[0])[-1]
    assert '"steps":5' in (workdir / PLACE / new).read_text()


def test_the_run_ends_with_what_it_built(smoke):
    """onsuccess prints the summary: tables, figures, claim counts, where to look."""
    workdir, log = smoke
    summary = log[log.index("vqrepro: finished at smoke scale"):]
    counts = yaml.safe_load((workdir / PLACE / "results" / "metrics" / "claims.json").read_text())["all"]
    assert re.search(r"tables: (\d+) of \1 in scales/smoke/results/tables/", summary)
    assert (f"claims: {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts['inconclusive']} inconclusive, {counts['not measurable here']} not measurable here") in summary
    assert "snakemake --report results/report.html with the same --configfile" in summary
    assert not (workdir / "results").exists() and not (workdir / "runs").exists()  # nothing outside scales/smoke/
