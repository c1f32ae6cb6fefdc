"""Training: resume after SIGKILL gives the same result; a non-finite loss fails clearly."""
import json
import re
import sys

import pytest
import torch

from conftest import kill_after_first_checkpoint_then_rerun
from vqrepro import data
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.errors import ConfigError
from vqrepro.io import load_tensors, save_tensors
from vqrepro.train import NonFiniteLossError, train_tokenizer


def tiny_settings(params, steps=120, checkpoint_every=10, method="vq"):
    return {
        "dataset": "digits",
        "quantizer": dict(params["quantizers"][method]),
        "model": dict(params["models"]["mini_digits"], hidden_channels=16, residual_channels=8),
        "training": dict(params["training"]["digits_mini"], steps=steps, batch_size=32, log_every=5,
                         checkpoint_every=checkpoint_every),
        "codebook_size": 16,
        "code_dim": 4,
        "seed": 0,
    }


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("digits")
    data.prepare("digits", params["datasets"]["digits"], path)
    return path


def train_cmd(settings, data_dir, out_dir):
    return [sys.executable, "-m", "vqrepro", "train", "--settings", json.dumps(settings),
            "--data", str(data_dir), "--out", str(out_dir), "--threads", "1"]


@pytest.mark.parametrize("method", ["vq", "ema"])
def test_killed_job_resumes_to_the_same_result(tmp_path, params, digits_dir, method):
    settings = tiny_settings(params, steps=400, checkpoint_every=20, method=method)
    reference = train_tokenizer(settings, digits_dir, tmp_path / "reference")

    out = tmp_path / "killed"
    # The rule's outputs: Snakemake deletes them when the killed job fails, the log among them.
    kill_after_first_checkpoint_then_rerun(train_cmd(settings, digits_dir, out), out, "ckpt.pt", 400,
                                           rule_outputs=("ckpt.pt", "ckpt.pt.sha256", "train_log.csv"))

    a, b = load_tensors(reference)["model"], load_tensors(out / "ckpt.pt")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    eval_cfg = {**params["evaluation"], "weights": params["weights"], "metrics": ["mse", "usage"]}
    m_ref = evaluate_tokenizer(reference, digits_dir, tmp_path / "ref.json", eval_cfg)["metrics"]
    m_res = evaluate_tokenizer(out / "ckpt.pt", digits_dir, tmp_path / "res.json", eval_cfg)["metrics"]
    assert m_ref == m_res
    log_steps = [int(line.split(",")[0]) for line in (out / "train_log.csv").read_text().splitlines()[1:]]
    assert log_steps == list(range(5, 401, 5))  # every logged step once: none lost with the deleted log, none twice
    assert (out / "train_log.csv").read_text() == (reference.parent / "train_log.csv").read_text()


def test_resume_file_from_other_settings_is_ignored(tmp_path, params, digits_dir):
    settings = tiny_settings(params, steps=20)
    save_tensors(tmp_path / "resume.pt", {"step": 15, "settings_hash": "someone-else"})
    train_tokenizer(settings, digits_dir, tmp_path)
    assert load_tensors(tmp_path / "ckpt.pt")["steps"] == 20


def test_non_finite_loss_stops_without_a_checkpoint(tmp_path, params):
    # Constant images have zero pixel variance, so MSE / Var is 0/0 = NaN at the first step.
    blank = tmp_path / "blank"
    split = {"images": torch.zeros(64, 1, 8, 8, dtype=torch.uint8)}
    save_tensors(blank / "train.pt", split)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="no checkpoint written"):
        train_tokenizer(tiny_settings(params, steps=5), blank, out)
    assert not (out / "ckpt.pt").exists()


ABSENT = object()
BAD_TRAINING_SETTINGS = [
    ("unknown key", {"stpes": 10}, "training.stpes: unknown training setting"),
    ("integer as text", {"batch_size": "64"}, "training.batch_size: must be an integer, got '64'"),
    ("true as a count", {"workers": True}, "training.workers: must be an integer, got True"),
    ("one beta", {"betas": [0.9]}, "training.betas: must be a list of two numbers"),
    ("missing", {"lr": ABSENT}, "training.lr: missing"),
]


@pytest.mark.parametrize("label,edit,message", BAD_TRAINING_SETTINGS, ids=[b[0] for b in BAD_TRAINING_SETTINGS])
def test_a_bad_training_setting_stops_the_loop_before_any_work_with_one_message_naming_it(
        tmp_path, params, label, edit, message):
    settings = tiny_settings(params, steps=5)
    edited = {**settings["training"], **edit}
    settings["training"] = {key: value for key, value in edited.items() if value is not ABSENT}
    with pytest.raises(ConfigError, match=re.escape(message)):  # before the (absent) data is read
        train_tokenizer(settings, tmp_path / "no-data", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_training_log_records_losses_usage_and_perplexity(tmp_path, params, digits_dir):
    train_tokenizer(tiny_settings(params, steps=20), digits_dir, tmp_path)
    header = (tmp_path / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss", "recon", "commit", "codebook", "batch_usage", "batch_perplexity"} <= set(header)


def test_train_with_evaluate_writes_the_metrics_a_separate_evaluation_writes(tmp_path, params, digits_dir):
    """The rule trains and evaluates in one process; the numbers equal those of the evaluate verb run apart."""
    import subprocess

    settings = tiny_settings(params, steps=40, checkpoint_every=20)
    eval_cfg = {**params["evaluation"], "weights": params["weights"]}
    out = tmp_path / "run"
    joined = subprocess.run(train_cmd(settings, digits_dir, out) + ["--evaluate", json.dumps(eval_cfg),
                                                                     "--metrics", str(out / "metrics.json")],
                            capture_output=True, text=True)
    assert joined.returncode == 0, joined.stderr[-2000:]
    apart = subprocess.run([sys.executable, "-m", "vqrepro", "evaluate", "--ckpt", str(out / "ckpt.pt"),
                            "--settings", json.dumps(eval_cfg), "--data", str(digits_dir),
                            "--out", str(tmp_path / "apart.json"), "--threads", "1"], capture_output=True, text=True)
    assert apart.returncode == 0, apart.stderr[-2000:]
    together, alone = (json.loads(p.read_text()) for p in (out / "metrics.json", tmp_path / "apart.json"))
    assert together["metrics"] == alone["metrics"] and together["metrics"]["usage"] > 0
    assert together["missing"] == alone["missing"] and together["tokens"] == alone["tokens"]
