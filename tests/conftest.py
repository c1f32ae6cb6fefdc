# The jobs pin their CPU kernels (vqrepro.cli.PINNED_CPU_KERNELS) before torch loads; tests that
# compare a job's output with a run in this process need the same kernels here.
from vqrepro.cli import pin_cpu_kernels

pin_cpu_kernels()

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def make(cls, k, d, **settings):
    """A quantizer of class ``cls`` at K = k, D = d with these settings over its paper defaults."""
    return cls(k, d, cls.settings_from(settings))


@pytest.fixture(scope="session")
def params() -> dict:
    """The repository's params.yaml with its papers' catalogues merged in (papers/*.yaml), as every run
    sees it; written out, it stands alone (``papers: []``). Read-only: tests deep-copy it before editing."""
    from vqrepro.config import load

    return load(REPO / "params.yaml")


@pytest.fixture
def params_copy(params) -> dict:
    return copy.deepcopy(params)


def kill_after_first_checkpoint_then_rerun(cmd: list[str], out_dir: Path, final: str, steps: int,
                                           rule_outputs: tuple[str, ...] = ()):
    """Start a training command, SIGKILL it once its first resume.pt is complete, then run it again.

    Before the rerun the files named in ``rule_outputs`` are deleted, as Snakemake deletes a failed
    job's outputs. Returns (the rerun's CompletedProcess, the step it resumed from)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out_dir / "resume.pt.sha256").exists():  # the checksum is written after the checkpoint
        assert proc.poll() is None, "training finished before it could be killed; raise steps"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out_dir / final).exists()  # killed mid-run: no final checkpoint
    from vqrepro.io import load_tensors

    resumed_from = load_tensors(out_dir / "resume.pt")["step"]
    assert 0 < resumed_from < steps
    for name in rule_outputs:
        (out_dir / name).unlink(missing_ok=True)
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {out_dir} from step {resumed_from}" in rerun.stderr
    assert not (out_dir / "resume.pt").exists()  # removed once the final checkpoint is written
    return rerun, resumed_from
