"""DVC wraps the Snakemake DAG: `dvc repro` after a params.yaml edit re-runs only the affected jobs,
and a fresh clone restored from a DVC remote re-runs nothing."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_workflow import tiny_params

ENV = {
    **os.environ,
    "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
}


def run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory, params) -> Path:
    """A git repository holding what a fresh clone of this one holds (the workflow, dvc.yaml, the
    committed dvc.lock and results/, results/report.html.dvc) with a tiny params.yaml.

    Copied from the working tree, not cloned, so that uncommitted edits are what gets tested."""
    root = tmp_path_factory.mktemp("dvcproject")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():  # not a file deleted in the working tree
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    assert (root / ".dvc" / "config").exists() and (root / "results" / "report.html.dvc").exists()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(params)))
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "the workflow with a tiny params.yaml")
    return root


README_DVC_SECTION = (REPO / "README.md").read_text().split("## Sharing data and checkpoints (DVC remote)")[1]
README_DVC_SECTION = README_DVC_SECTION.split("\n## ")[0]
REMOTE_PLACEHOLDER, CLONE_PLACEHOLDER = "/path/to/shared/vqrepro-store", "<repository URL>"


def documented(command: str) -> str:
    assert command in README_DVC_SECTION, f"README.md's DVC section no longer says `{command}`: update this test"
    return command


def step(cwd: Path, command: str, timings: dict) -> subprocess.CompletedProcess:
    """Run one documented command through bash, as a reader would paste it."""
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=ENV, capture_output=True, text=True)
    timings[command] = round(time.monotonic() - started, 1)
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def tree_digests(root: Path, *folders: str) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p) for f in folders for p in sorted((root / f).rglob("*")) if p.is_file()}


# First in the module: it needs a project in which nothing has run yet.
def test_the_readme_round_trip_pushes_restores_and_reruns_nothing(project, tmp_path):
    """README.md's DVC section, command for command: a plain snakemake run, record, push, commit,
    clone, restore; then the clone's dry run plans nothing."""
    store, timings = tmp_path / "store", {}
    step(project, documented("snakemake --cores all"), timings)
    add_remote = documented(f"dvc remote add --default store {REMOTE_PLACEHOLDER}")
    step(project, add_remote.replace(REMOTE_PLACEHOLDER, str(store)), timings)
    step(project, documented("dvc repro"), timings)
    pushed = step(project, documented("dvc push"), timings)
    assert "Everything is up to date" not in pushed.stdout and any(store.rglob("*.dir")), pushed.stdout + pushed.stderr
    step(project, documented('git add .dvc/config dvc.lock results && git commit -m "Results and their DVC record"'), timings)
    assert run(project, "git", "status", "--porcelain").stdout == ""  # the commit holds everything a clone needs

    clone_command = documented(f"git clone {CLONE_PLACEHOLDER} vqrepro-restored && cd vqrepro-restored")
    step(tmp_path, clone_command.replace(CLONE_PLACEHOLDER, str(project)), timings)
    clone = tmp_path / "vqrepro-restored"
    restored = step(clone, documented("bash scripts/restore_from_remote.sh"), timings)
    # The report was never pushed (a plain run does not build it): named, skipped, not fatal.
    assert re.search(r"warning: results/report\.html .*not in\s+the DVC remote", restored.stderr), restored.stderr
    assert not (clone / "results" / "report.html").exists()
    dry = step(clone, documented("snakemake -n"), timings)
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
    print("seconds per documented step:", timings)

    assert tree_digests(clone, "data", "runs") == tree_digests(project, "data", "runs")  # bit for bit
    # Judged by file times alone (no checksums), nothing is stale after the restore either.
    strict = run(clone, sys.executable, "-m", "snakemake", "-n", "--max-checksum-file-size", "0")
    assert "Nothing to be done" in strict.stdout + strict.stderr

    # The job records came along: a params edit in the clone re-runs exactly its jobs.
    cfg = yaml.safe_load((clone / "params.yaml").read_text())
    cfg["quantizers"]["vq"]["commit_weight"] = 0.5
    (clone / "params.yaml").write_text(yaml.safe_dump(cfg))
    output = run(clone, sys.executable, "-m", "snakemake", "-n").stdout
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", output, re.MULTILINE))
    assert planned.get("train_tokenizer") == "4" and "prepare_data" not in planned, output[-3000:]


def test_dvc_repro_runs_the_workflow_then_only_what_a_params_edit_touches(project):
    run(project, sys.executable, "-m", "dvc", "repro")
    assert (project / "results" / "tables" / "tiny.md").exists()
    assert (project / "dvc.lock").exists()
    # The stage only: results/report.html.dvc's report is never built or cached here.
    assert "up to date" in run(project, sys.executable, "-m", "dvc", "status", "reproduce").stdout.lower()
    vq_ckpt = project / "runs/tiny/digits/vq/K8_D4/seed0/ckpt.pt"
    ema_ckpt = project / "runs/tiny/digits/ema/K8_D4/seed0/ckpt.pt"
    vq_before, ema_before = digest(vq_ckpt), digest(ema_ckpt)

    cfg = yaml.safe_load((project / "params.yaml").read_text())
    cfg["quantizers"]["ema"]["decay"] = 0.9
    (project / "params.yaml").write_text(yaml.safe_dump(cfg))
    second = run(project, sys.executable, "-m", "dvc", "repro")
    output = second.stdout + second.stderr
    trained = re.search(r"^train_tokenizer\s+(\d+)$", output, re.MULTILINE)
    assert trained and int(trained.group(1)) == 4, output[-3000:]  # the 4 EMA grid points, no VQ job
    assert "prepare_data" not in re.findall(r"^(\w+)\s+\d+$", output, re.MULTILINE)
    assert digest(vq_ckpt) == vq_before
    assert digest(ema_ckpt) != ema_before
    assert "up to date" in run(project, sys.executable, "-m", "dvc", "status", "reproduce").stdout.lower()


def test_dvc_plots_page_works_offline_and_shows_every_registered_figure(tmp_path):
    """The registered plots are the PNG figures: the page has no script or address to fetch."""
    run(REPO, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "<script" not in page and not re.search(r"(src|href)=\"https?://", page)
    registered = [p for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] if isinstance(p, str)]
    images = re.findall(r"<img[^>]*src=\"([^\"]+)\"", page)
    assert len(images) == len(registered)
    assert all((tmp_path / "plots" / src).is_file() for src in images)
