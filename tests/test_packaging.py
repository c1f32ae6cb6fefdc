"""pyproject.toml: the license as an SPDX string with its file, so building warns about nothing."""
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_its_file():
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the vqrepro authors\n")
    # an SPDX license string and license-files need setuptools 77
    assert "setuptools>=77" in pyproject()["build-system"]["requires"][0]


def test_wheel_builds_without_deprecation_warnings(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} here; the build backend needs >= 77")
    # a copy: setuptools writes build/ and vqrepro.egg-info/ beside the sources
    source = tmp_path / "source"
    shutil.copytree(REPO / "vqrepro", source / "vqrepro", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    # no build isolation: this environment's setuptools, nothing fetched
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                             "-w", str(tmp_path / "wheels"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "SetuptoolsDeprecationWarning" not in output and "project.license" not in output
    assert len(list((tmp_path / "wheels").glob("vqrepro-*.whl"))) == 1
