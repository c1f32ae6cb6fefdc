"""The repository stands alone: a clone with nothing beside it plans the default run and validates.

The clone is made from this checkout's committed history, then overlaid with its uncommitted
tracked and untracked (not ignored) files, so the test sees the tree as it is now. Nothing
is placed beside the clone: a path outside the checkout that the code reads would be missing.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def _uncommitted_files() -> list[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "--modified", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def lone_clone(tmp_path_factory) -> Path:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    empty = tmp_path_factory.mktemp("alone")
    clone = empty / "vqrepro"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    for rel in _uncommitted_files():
        src, dst = REPO / rel, clone / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists():  # deleted in the working tree
            dst.unlink(missing_ok=True)
    assert sorted(p.name for p in empty.iterdir()) == ["vqrepro"]  # nothing beside it
    return clone


def _run(clone: Path, *cmd: str) -> subprocess.CompletedProcess:
    # The clone's own package, not the one this interpreter was installed from.
    env = {**os.environ, "PYTHONPATH": str(clone),
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    return subprocess.run(list(cmd), cwd=clone, env=env, capture_output=True, text=True)


def test_clone_validates_params(lone_clone):
    result = _run(lone_clone, sys.executable, "-m", "vqrepro", "validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_clone_plans_the_default_run(lone_clone):
    result = _run(lone_clone, sys.executable, "-m", "snakemake", "-n", "--cores", "1")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "reproduction_report" in out and "train_tokenizer" in out


def test_published_numbers_ship_in_the_package(lone_clone):
    from vqrepro import config

    shipped = lone_clone / "vqrepro" / "paper_numbers"
    assert config.paper_numbers_dir().name == "paper_numbers"
    files = {spec["paper_numbers"]["file"] for spec in config.load(lone_clone / "params.yaml")["reproductions"].values()
             if "paper_numbers" in spec}
    assert files and all((shipped / name).is_file() for name in files)
    readme = (shipped / "README.md").read_text()
    assert all(name in readme for name in files)  # the README names the source of every file
