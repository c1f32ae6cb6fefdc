"""A real SLURM cluster: the workflow through profiles/slurm gives the same tables as a local run.

Needs a SLURM cluster that this machine can submit to, with a node up: `sudo bash
scripts/slurm_local.sh` makes this machine one (CI does so before pytest). Skipped otherwise.
The work directories are under pytest's tmp_path, which only this machine sees: on a multi-node
cluster point VQREPRO_SLURM_TEST_DIR at a directory on the shared file system.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import ENV, SNAKEMAKE, planned_jobs, tiny_params  # end-to-end test

PROFILE = REPO / "profiles" / "slurm"
# Measured on 2 cores: about 45 s locally and 3 min through SLURM (both at once). A run still going
# after this is stuck (e.g. jobs pending forever): it is interrupted, which cancels its SLURM jobs.
TIMEOUT_S = 1200


def cluster_unavailable() -> str | None:
    """Why no SLURM job could run here now, or None when a node is idle or partly used."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo/sbatch) on PATH; start a local cluster with: sudo bash scripts/slurm_local.sh"
    try:
        result = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30,
                                check=False)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (is slurmctld running? sudo bash scripts/slurm_local.sh)"
    if result.returncode != 0:
        return f"sinfo failed: {result.stderr.strip()} (start the cluster: sudo bash scripts/slurm_local.sh)"
    states = set(result.stdout.split())
    if not states & {"idle", "mixed"}:
        return f"no idle or mixed SLURM node (sinfo node states: {sorted(states) or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = cluster_unavailable()
    if reason:
        pytest.skip(reason)


def smallest_full_dag(params: dict) -> dict:
    """The end-to-end test's tiny config cut to one grid point per rule where it can be (16 jobs, every
    rule of the workflow), so the cluster run stays a few minutes: each SLURM job pays for two
    Snakemake start-ups and a status poll on top of its few seconds of work."""
    cfg = tiny_params(params)
    # Equal threads per job in both runs (1 here): CPU results are bit-identical only for equal threads.
    cfg["compute"] = {"threads_per_job": 1, "gpus_per_job": 0}
    cfg["studies"]["tiny"].update(codebook_sizes=[16], seeds=[0])  # vq and ema: 2 tokenizers
    cfg["training"]["tiny"]["eval_every"] = 10  # whole-split measurements, so the convergence report runs too
    cfg["generation_studies"]["tiny_generation"].update(quantizers=["vq"], priors=["gpt_mini"])
    # One paper table (and so the claims rule) and one toy, so that every rule runs through SLURM.
    cfg["reproductions"] = {"tiny_table": {"paper": "Test", "reproduces": "a paper table", "study": "tiny",
                                           "rows": {"vq": "VQ", "ema": "EMA"}, "metrics": ["mse", "usage"]}}
    cfg["toys"] = {"ste_affine_2d": {"steps": 5, "num_points": 64, "points_per_step": 16}}
    return cfg


def start(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*SNAKEMAKE, "--directory", str(workdir), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=workdir, env=ENV)


def finish(proc: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    """Wait for a Snakemake run; past the timeout, interrupt it as Ctrl-C would (Snakemake then
    scancels the SLURM jobs it submitted) and fail the test."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(map(str, proc.args))} still running after {timeout:.0f} s; "
                    f"interrupted. Output:\n{(stdout + stderr)[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr)[-6000:]


@pytest.fixture(scope="module")
def runs(cluster, params, tmp_path_factory):
    """The same project run twice: locally, and through the SLURM profile."""
    shared = os.environ.get("VQREPRO_SLURM_TEST_DIR")
    base = Path(tempfile.mkdtemp(prefix="test_slurm_", dir=shared)) if shared else tmp_path_factory.mktemp("slurm")
    local, slurm = base / "local", base / "slurm"
    for workdir in (local, slurm):
        workdir.mkdir()
        (workdir / "params.yaml").write_text(yaml.safe_dump(smallest_full_dag(params)))
    # Both at once: the cluster run mostly waits (job start-up, status polls), so this saves minutes.
    local_proc = start(local, "--cores", "2")
    slurm_proc = start(
        slurm,
        "--workflow-profile", str(PROFILE),
        "--jobs", "4",
        # Poll every few seconds instead of the profile's 40 s: the jobs here take seconds.
        "--slurm-init-seconds-before-status-checks", "3",
        "--seconds-between-status-checks", "3",
        # Evidence that the jobs went through SLURM: one log per job (normally deleted on success).
        "--slurm-keep-successful-logs",
        # Debug output names each sbatch call and the status command of each poll.
        "--verbose",
    )
    try:
        slurm_run = finish(slurm_proc, TIMEOUT_S)
    finally:
        local_run = finish(local_proc, TIMEOUT_S)
    yield local, local_run, slurm, slurm_run
    if shared:
        shutil.rmtree(base, ignore_errors=True)


def test_both_runs_succeed(runs):
    _, local_run, _, slurm_run = runs
    assert local_run.returncode == 0, tail(local_run)
    assert slurm_run.returncode == 0, tail(slurm_run)
    jobs = planned_jobs(local_run)
    listed = subprocess.run([*SNAKEMAKE, "--list-rules"], capture_output=True, text=True, cwd=REPO, env=ENV)
    rules = {line.strip() for line in listed.stdout.splitlines() if re.fullmatch(r"\s*\w+", line)}
    assert set(jobs) == rules  # every rule of the workflow
    steps = sum(jobs.values())  # 16 jobs and the target rule `all`
    for result in (local_run, slurm_run):
        assert f"{steps} of {steps} steps (100%) done" in result.stdout + result.stderr, tail(result)


def test_every_job_went_through_sbatch_with_its_resources(runs):
    _, local_run, slurm, slurm_run = runs
    jobs = planned_jobs(local_run)
    jobs.pop("all")  # the target rule runs no command: never submitted
    # Local rules run on the submitting node: copying a grid point out of its trained run takes 0.1 s.
    assert jobs.pop("read_tokenizer_run") > 0
    out = slurm_run.stdout + slurm_run.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", out)
    assert len(submitted) == sum(jobs.values()), tail(slurm_run)
    logs = [Path(log) for _, log in submitted]
    assert all(log.is_file() and "Finished jobid" in log.read_text() for log in logs)
    # .snakemake/slurm_logs/rule_<rule>/<wildcards>/<SLURM job id>.log
    assert {log.relative_to(slurm / ".snakemake" / "slurm_logs").parts[0] for log in logs} == {f"rule_{r}" for r in jobs}
    calls = re.findall(r"sbatch call: (.*)", out)
    assert len(calls) == len(submitted)
    for call in calls:
        assert re.search(r" -t '?\d+'? ", call) and re.search(r" --mem \d+", call), call  # runtime, mem_mb
        assert " --cpus-per-task=1" in call, call  # threads_per_job
        assert "--gpus" not in call and "--gres" not in call, call  # gpu=0: no GPU request at all


def test_status_came_from_squeue_not_sacct(runs):
    """The local cluster has no accounting database: sacct cannot answer, squeue must."""
    _, _, _, slurm_run = runs
    out = slurm_run.stdout + slurm_run.stderr
    commands = set(re.findall(r"Status query timing \(cycle\): command=(\w+)", out))
    assert commands == {"squeue"}, tail(slurm_run)
    assert "Falling back to 'sacct'" not in out
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    listed = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T", "--name", run_id],
                            capture_output=True, text=True, timeout=30, check=False)
    states = dict(line.split("|") for line in listed.stdout.split())
    # slurmctld still lists the run's jobs (MinJobAge=600 in scripts/slurm_local.sh), all completed.
    if states:
        assert set(states.values()) == {"COMPLETED"}, states


def test_tables_equal_the_local_run(runs):
    local, _, slurm, _ = runs
    local_tables = sorted(p.name for p in (local / "results" / "tables").glob("*.csv"))
    assert local_tables == ["tiny.csv", "tiny_generation.csv", "tiny_over_steps.csv", "tiny_table.csv"]
    assert sorted(p.name for p in (slurm / "results" / "tables").glob("*.csv")) == local_tables
    for name in local_tables:
        assert (slurm / "results" / "tables" / name).read_text() == (local / "results" / "tables" / name).read_text(), name
    for name in ("claims.md", "metrics/toy_ste_affine_2d.json"):
        assert (slurm / "results" / name).read_text() == (local / "results" / name).read_text(), name
