"""What makes a verdict trustworthy: each paper's loop settings, whole-split usage, the
convergence study, real 28x28 MNIST, and claims that carry their diagnosis."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from vqrepro import data
from vqrepro.claims import NO_EVIDENCE, evaluate_claim
from vqrepro.convergence import build_convergence_report, settled_step
from vqrepro.evaluate import evaluate_tokenizer
from test_train import tiny_settings as train_settings
from vqrepro.train import train_tokenizer
from vqrepro.training_settings import TrainingSettings


def tiny_settings(params, steps=20, **training):
    """test_train's tiny run, with extra loop settings (grad_clip_norm, eval_every, ...)."""
    settings = train_settings(params, steps=steps, checkpoint_every=10)
    settings["training"].update(training)
    return settings


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("digits")
    data.prepare("digits", params["datasets"]["digits"], path)
    return path


def test_bundled_mnist_is_real_28x28_and_split_stratified(tmp_path, params):
    info = data.prepare("mnist_5k", params["datasets"]["mnist_5k"], tmp_path)
    assert info["splits"]["train"]["count"] == 4000 and info["splits"]["test"]["count"] == 1000
    test = data.load_split(tmp_path, "test")
    assert test.shape == (1, 28, 28)
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 100))  # 500 per class, 20 % each
    images = test.images.float()
    assert images.max() == 255 and (images == 0).float().mean() > 0.7  # ink on a black background, as MNIST
    again = data.prepare("mnist_5k", params["datasets"]["mnist_5k"], tmp_path / "again")
    assert again["splits"]["train"]["sha256"] == info["splits"]["train"]["sha256"]


def test_learning_rate_decays_once_per_epoch(params):
    preset = {key: value for key, value in params["training"]["digits_mini"].items() if key != "lr_decay_per_epoch"}
    decayed = TrainingSettings.from_dict(dict(preset, lr=1e-3, lr_decay_per_epoch=0.5))
    assert [decayed.learning_rate(step, 10) for step in (0, 9, 10, 25)] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    assert TrainingSettings.from_dict(dict(preset, lr=1e-3)).learning_rate(1000, 10) == 1e-3  # absent: constant


def test_gradient_clipping_changes_training(tmp_path, params, digits_dir):
    plain = train_tokenizer(tiny_settings(params, steps=5), digits_dir, tmp_path / "plain")
    clipped = train_tokenizer(tiny_settings(params, steps=5, grad_clip_norm=1e-3), digits_dir, tmp_path / "clip")
    from vqrepro.io import load_tensors

    a, b = load_tensors(plain)["model"], load_tensors(clipped)["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_convergence_csv_measures_whole_splits_at_each_interval(tmp_path, params, digits_dir):
    train_tokenizer(tiny_settings(params, steps=20, eval_every=10), digits_dir, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "convergence.csv")))
    assert [(int(r["step"]), r["split"]) for r in rows] == [(10, "train"), (10, "test"), (20, "train"), (20, "test")]
    # every token of the split is counted: 1,437 train / 360 test images of 4x4 tokens
    assert {r["split"]: int(r["tokens"]) for r in rows} == {"train": 1437 * 16, "test": 360 * 16}
    # without eval_every the file exists with its header only (it is a rule output)
    train_tokenizer(tiny_settings(params, steps=10), digits_dir, tmp_path / "off")
    assert (tmp_path / "off" / "convergence.csv").read_text().startswith("step,split,usage")
    assert len((tmp_path / "off" / "convergence.csv").read_text().splitlines()) == 1


def test_evaluation_reports_usage_on_both_splits(tmp_path, params, digits_dir):
    ckpt = train_tokenizer(tiny_settings(params, steps=10), digits_dir, tmp_path)
    eval_cfg = {**params["evaluation"], "weights": params["weights"], "metrics": ["mse", "usage"]}
    result = evaluate_tokenizer(ckpt, digits_dir, tmp_path / "m.json", eval_cfg)
    assert result["tokens"] == {"test": 360 * 16, "train": 1437 * 16}
    assert 0 < result["metrics"]["usage"] <= result["metrics"]["usage_train"] <= 1  # more tokens, at least as many codes


def test_settled_step_is_where_usage_stops_moving():
    curve = pd.DataFrame({"step": [250, 500, 750, 1000, 1250], "usage": [0.1, 0.5, 0.79, 0.80, 0.81]})
    assert settled_step(curve, tolerance=0.02) == 750
    rising = pd.DataFrame({"step": [250, 500, 750], "usage": [0.1, 0.3, 0.6]})
    assert settled_step(rising, tolerance=0.02) is None


def test_convergence_report_says_whether_a_schedule_stops_after_settling(tmp_path):
    files, keys = [], []
    for quantizer, usage in (("vq", [0.02, 0.03, 0.03, 0.03]), ("nsvq", [0.2, 0.6, 0.78, 0.79])):
        path = tmp_path / f"{quantizer}.csv"
        rows = [{"step": 250 * (i + 1), "split": split, "usage": u, "perplexity": 10, "mse": 0.01,
                 "codes_used": 1, "tokens": 100} for i, u in enumerate(usage) for split in ("train", "test")]
        pd.DataFrame(rows).to_csv(path, index=False)
        files.append(str(path))
        keys.append({"quantizer": quantizer, "codebook_size": 1024, "code_dim": 64, "seed": 0})
    build_convergence_report("conv", "Convergence", files, keys, tmp_path / "results",
                             {"long_enough": 1000, "too_short": 500}, "mini")
    md = (tmp_path / "results" / "tables" / "conv_over_steps.md").read_text()
    assert "| nsvq | 1024 | 64 | 20.0 | 60.0 | 78.0 | 79.0 | 750 |" in md
    assert "`long_enough`: 1000 steps; settled: yes" in md
    assert "`too_short`: 500 steps; settled: no: 750 steps needed" in md
    assert (tmp_path / "results" / "figures" / "conv_over_steps.png").stat().st_size > 0


def test_a_miss_without_declared_checks_says_so():
    summary = pd.DataFrame([{"row": "NS-VQ", "quantizer": "nsvq", "codebook_size": 1024, "code_dim": 64, "seeds": 3,
                             "usage_mean": 0.5, "usage_std": 0.01}])
    claim = {"id": "c", "paper": "NS-VQ", "statement": "full usage", "reproduction": "t",
             "check": {"row": {"quantizer": "nsvq"}, "metric": "usage", "at_least": 0.95}}
    result = evaluate_claim(claim, summary, {}, "mini")
    assert (result["status"], result["reason"]) == ("not reproduced", NO_EVIDENCE)
    claim["check"]["at_least"] = 0.4
    assert evaluate_claim(claim, summary, {}, "mini")["reason"] == ""  # reproduced: nothing to explain


def test_compare_runs_finds_a_run_that_differs_and_passes_identical_ones(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"
    for side, usage in (("a", 0.5), ("b", 0.5)):
        for seed, u in ((0, 0.25), (1, usage)):
            run = tmp_path / side / "st" / "digits" / "vq" / "K64_D8" / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps({"metrics": {"usage": u, "lpips": None}, "provenance": {"seconds": side}}))
    same = subprocess.run([sys.executable, str(script), tmp_path / "a", tmp_path / "b"], capture_output=True, text=True)
    assert same.returncode == 0 and "| st | 2 | 2 | 0 |" in same.stdout  # provenance is not compared
    (tmp_path / "b" / "st" / "digits" / "vq" / "K64_D8" / "seed1" / "metrics.json").write_text(
        json.dumps({"metrics": {"usage": 0.75, "lpips": None}}))
    differ = subprocess.run([sys.executable, str(script), tmp_path / "a", tmp_path / "b"], capture_output=True, text=True)
    assert differ.returncode == 1 and "differs: st/digits/vq/K64_D8/seed1: usage by 0.25" in differ.stdout
