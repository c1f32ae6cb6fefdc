import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> dict:
    """The repository's params.yaml (read-only: tests deep-copy it before editing)."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def params_copy(params) -> dict:
    return copy.deepcopy(params)
