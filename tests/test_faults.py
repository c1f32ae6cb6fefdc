"""Faults a real run meets, each with the outcome we promise (docs/reliability.md).

A diverging grid point under --keep-going; damaged checkpoints; determinism; writes
killed half-way or racing; malformed params.yaml files run through the real Snakefile.
(A job killed by SIGKILL resuming to the same result: tests/test_train.py and
tests/test_prior.py. A missing data path or weight file: tests/test_data.py and
tests/test_metrics.py.)
"""
import json
import shutil
import subprocess
import sys
import traceback

import pytest
import torch
import yaml
from test_train import tiny_settings
from test_workflow import snakemake, tiny_params

from vqrepro import data, io
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.io import load_tensors, save_tensors, write_text
from vqrepro.train import train_tokenizer


def test_nan_fails_its_job_and_keep_going_still_reports_the_rest(tmp_path, params):
    cfg = tiny_params(params)
    # The injected fault: a preset whose commitment weight is NaN makes the loss NaN at step 0.
    cfg["quantizers"]["vq_nan"] = dict(cfg["quantizers"]["vq"], commit_weight=float("nan"))
    cfg["studies"]["tiny"].update(quantizers=["vq", "vq_nan"], codebook_sizes=[8], seeds=[0])
    cfg["run_generation_studies"], cfg["generation_studies"] = [], {}
    cfg["reproductions"] = {"tiny_table": {"paper": "Test", "reproduces": "a paper table", "study": "tiny",
                                           "rows": {"vq": "VQ", "vq_nan": "VQ (NaN)"}, "metrics": ["mse", "usage"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))

    result = snakemake(tmp_path, "--cores", "2", "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode != 0  # the workflow reports the failure
    assert "Error in rule train_tokenizer" in output and "vq_nan" in output

    failed_run = tmp_path / "runs/tiny/digits/vq_nan/K8_D4/seed0"
    assert not (failed_run / "ckpt.pt").exists()  # no checkpoint from a diverged run
    failure = json.loads((failed_run / "failure.json").read_text())
    assert failure["error"] == "NonFiniteLossError" and failure["step"] == 0
    assert failure["trained_run"].startswith("runs/trained/digits/vq_K8_D4_seed0_")  # the run it reads
    log = (tmp_path / failure["log"]).read_text()
    assert "loss is nan at step 0" in log and "Lower training.lr or check the quantizer preset" in log

    assert (tmp_path / "runs/tiny/digits/vq/K8_D4/seed0/metrics.json").exists()  # the other job finished
    table = (tmp_path / "results/tables/tiny.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| vq")}
    assert "failed" not in rows["vq"] and "failed" in rows["vq_nan"]
    assert "Failed: vq_nan K=8 D=4 seed 0: NonFiniteLossError at step 0: loss is nan" in table
    assert (tmp_path / "results/figures/tiny_usage_vs_codebook_size.png").exists()
    paper_table = (tmp_path / "results/tables/tiny_table.md").read_text()  # the paper table of the study too
    assert "| VQ (NaN) | 0 | failed | failed |" in paper_table and "Failed: vq_nan" in paper_table

    # Fixing the preset and running again trains the point, and the failure record goes away.
    cfg["quantizers"]["vq_nan"]["commit_weight"] = 0.25
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (failed_run / "failure.json").exists()
    assert "failed" not in (tmp_path / "results/tables/tiny.md").read_text().lower()


# ------------------------------------------------------------------ corrupt and truncated files


@pytest.fixture(scope="module")
def trained(tmp_path_factory, params):
    """A tiny tokenizer run on digits: (data folder, run folder, settings)."""
    root = tmp_path_factory.mktemp("trained")
    data.prepare("digits", params["datasets"]["digits"], root / "data")
    settings = tiny_settings(params, steps=20)
    train_tokenizer(settings, root / "data", root / "run")
    return root / "data", root / "run", settings


def vqrepro_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqrepro", *args], check=False, capture_output=True, text=True)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_a_damaged_checkpoint_is_detected_and_never_used(trained, params, tmp_path, damage):
    data_dir, run, _ = trained
    ckpt = tmp_path / "ckpt.pt"
    shutil.copy(run / "ckpt.pt", ckpt)
    shutil.copy(run / "ckpt.pt.sha256", tmp_path / "ckpt.pt.sha256")
    raw = bytearray(ckpt.read_bytes())
    ckpt.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    eval_cfg = {**params["evaluation"], "weights": params["weights"], "metrics": ["mse"]}
    result = vqrepro_cli("evaluate", "--ckpt", str(ckpt), "--data", str(data_dir), "--out", str(tmp_path / "m.json"),
                         "--settings", json.dumps(eval_cfg))
    assert result.returncode == 1
    assert "corrupt or truncated" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.json").exists()


class _RunsACommand:
    """A pickle that runs a shell command when unpickled (stands in for a malicious checkpoint)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _untrusted_files(tmp_path, run):
    """(name, bytes) of files that are not vqrepro tensor files; each gets a correct sidecar."""
    import pickle

    marker = tmp_path / "code_ran"
    crafted_zip = tmp_path / "crafted.pt"
    torch.save({"model": _RunsACommand(marker)}, crafted_zip)
    whole = (run / "ckpt.pt").read_bytes()
    return marker, {
        "malicious_zip": crafted_zip.read_bytes(),
        "malicious_pickle": pickle.dumps({"model": _RunsACommand(marker)}),
        "truncated": whole[: len(whole) // 2],
        "empty": b"",
    }


@pytest.mark.parametrize("kind", ["malicious_zip", "malicious_pickle", "truncated", "empty"])
def test_a_file_with_a_matching_sidecar_that_vqrepro_did_not_write_is_refused_in_one_line(trained, params, tmp_path,
                                                                                         kind):
    data_dir, run, _ = trained
    marker, files = _untrusted_files(tmp_path, run)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(files[kind])
    write_text(tmp_path / "ckpt.pt.sha256", io.sha256_file(ckpt) + "\n")  # a recomputed, matching checksum

    with pytest.raises(io.CorruptFileError) as err:
        load_tensors(ckpt)
    message = str(err.value)
    assert "not a vqrepro tensor file" in message and "delete it" in message and str(ckpt) in message
    assert "weights_only" not in message and "\n" not in message
    shown = "".join(traceback.format_exception(err.value))  # what a Python caller would see
    assert "weights_only" not in shown  # torch's advice to switch the safety off is not chained on either

    eval_cfg = {**params["evaluation"], "weights": params["weights"], "metrics": ["mse"]}
    result = vqrepro_cli("evaluate", "--ckpt", str(ckpt), "--data", str(data_dir), "--out", str(tmp_path / "m.json"),
                         "--settings", json.dumps(eval_cfg))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"vqrepro evaluate: error: {message}"]  # one line, no traceback, no warning
    assert not marker.exists()  # the crafted pickle never ran
    assert not (tmp_path / "m.json").exists()


def test_a_damaged_resume_file_is_ignored_and_training_restarts(trained, tmp_path):
    data_dir, run, settings = trained
    out = tmp_path / "run"
    out.mkdir()
    save_tensors(out / "resume.pt", {"step": 10, "settings_hash": "x"})
    (out / "resume.pt").write_bytes((out / "resume.pt").read_bytes()[:20])  # truncated after its checksum
    result = vqrepro_cli("train", "--settings", json.dumps(settings), "--data", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "ignoring unusable" in result.stderr and "corrupt or truncated" in result.stderr
    reference, restarted = load_tensors(run / "ckpt.pt")["model"], load_tensors(out / "ckpt.pt")["model"]
    assert all(torch.equal(reference[name], restarted[name]) for name in reference)  # trained from step 0


# ------------------------------------------------------------------ determinism and atomic writes


def test_the_same_seed_gives_identical_weights_and_metrics_on_cpu(trained, params, tmp_path):
    data_dir, run, settings = trained
    again = train_tokenizer(settings, data_dir, tmp_path / "again")
    assert (run / "ckpt.pt").read_bytes() != b""  # the first run exists
    first, second = load_tensors(run / "ckpt.pt")["model"], load_tensors(again)["model"]
    assert all(torch.equal(first[name], second[name]) for name in first)
    eval_cfg = {**params["evaluation"], "weights": params["weights"], "metrics": ["mse", "psnr", "usage", "perplexity"]}
    m1 = evaluate_tokenizer(run / "ckpt.pt", data_dir, tmp_path / "m1.json", eval_cfg)["metrics"]
    m2 = evaluate_tokenizer(again, data_dir, tmp_path / "m2.json", eval_cfg)["metrics"]
    assert m1 == m2


def test_a_write_killed_half_way_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old\n")

    def half_then_die(handle):
        handle.write(b'{"partial": ')
        raise KeyboardInterrupt  # stands in for a kill between write and rename

    with pytest.raises(KeyboardInterrupt):
        io._atomic(target, half_then_die)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_parallel_writers_leave_one_whole_file(tmp_path):
    target = tmp_path / "shared.txt"
    script = ("import sys; from vqrepro.io import write_text\n"
              "for _ in range(200): write_text(sys.argv[1], sys.argv[2] * 100000)\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(target), letter]) for letter in "ab"]
    while any(w.poll() is None for w in writers):
        if target.exists():
            text = target.read_text()
            assert text in ("a" * 100000, "b" * 100000)  # never a mix, never short
    assert all(w.returncode == 0 for w in writers)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


# ------------------------------------------------------------------ malformed params.yaml, end to end


def _edit(path, value):
    def apply(cfg):
        node = cfg
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return apply


DELETE = object()
MALFORMED_FILES = [
    ("negative steps", _edit(["training", "tiny", "steps"], -5), "training.tiny.steps"),
    ("zero codebook size", _edit(["studies", "tiny", "codebook_sizes"], [8, 0]), "studies.tiny.codebook_sizes[1]"),
    ("unknown quantizer preset", _edit(["studies", "tiny", "quantizers"], ["vq", "vqq"]), "studies.tiny.quantizers[1]"),
    ("unknown method", _edit(["quantizers", "ema", "method"], "emma"), "quantizers.ema.method"),
    ("setting of wrong type", _edit(["quantizers", "vq", "commit_weight"], "high"), "quantizers.vq"),
    ("unknown setting", _edit(["quantizers", "vq", "beta"], 0.25), "quantizers.vq"),
    ("decay out of range", _edit(["quantizers", "ema", "decay"], 1.5), "quantizers.ema"),
    ("fsq levels that do not match K", _edit(["quantizers", "vq"], {"method": "fsq", "levels": [3, 3]}), "quantizers.vq"),
    ("missing learning rate", _edit(["training", "tiny", "lr"], DELETE), "training.tiny"),
    ("unknown data set", _edit(["studies", "tiny", "dataset"], "cifar100"), "studies.tiny.dataset"),
    ("unknown top-level key", _edit(["trainig"], {}), "trainig"),
    ("seeds not a list", _edit(["studies", "tiny", "seeds"], 3), "studies.tiny.seeds"),
    ("threads zero", _edit(["compute", "threads_per_job"], 0), "compute.threads_per_job"),
]


@pytest.mark.parametrize("label,edit,key", MALFORMED_FILES, ids=[m[0] for m in MALFORMED_FILES])
def test_a_malformed_params_file_stops_snakemake_with_one_message_and_touches_no_results(
        tmp_path, params, label, edit, key):
    cfg = tiny_params(params)
    edit(cfg)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "results" / "tables").mkdir(parents=True)
    sentinel = tmp_path / "results" / "tables" / "tiny.md"
    sentinel.write_text("earlier results\n")
    result = snakemake(tmp_path, "--cores", "1")
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "invalid configuration" in line]
    assert len(errors) == 1 and key in errors[0], result.stdout + result.stderr
    assert sentinel.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snakemake", "params.yaml", "results"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "results"]
