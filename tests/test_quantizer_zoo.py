"""Every preset of the zoo study and every registered method through the real training loop,
evaluation and checkpoint (a method outside the zoo runs with its preset or its Settings defaults)."""
import math

import pytest
import torch
import yaml
from conftest import REPO

from vqrepro import data
from vqrepro.config import load, quantizer_preset
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.quantizers import REGISTRY
from vqrepro.checkpoints import load_model
from vqrepro.train import train_tokenizer

PARAMS = load(REPO / "params.yaml")  # with the papers' catalogues merged in
ZOO = PARAMS["studies"]["quantizer_zoo"]
PRESETS = ZOO["quantizers"] + [method for method in REGISTRY if method not in ZOO["quantizers"]]


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits")
    data.prepare("digits", PARAMS["datasets"]["digits"], path)
    return path


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_reports_usage_and_survives_a_checkpoint(preset, digits_dir, tmp_path):
    settings = {
        "dataset": "digits",
        "quantizer": quantizer_preset(PARAMS, preset),
        "model": dict(PARAMS["models"]["mini_digits"], hidden_channels=16, residual_channels=8),
        "training": dict(PARAMS["training"]["digits_mini"], steps=12, batch_size=16, log_every=3, checkpoint_every=6),
        "codebook_size": ZOO["codebook_sizes"][0],  # the zoo's K: every preset must accept it
        "code_dim": 4,
        "seed": 0,
    }
    ckpt = train_tokenizer(settings, digits_dir, tmp_path / "run")
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    header, rows = log[0].split(","), [line.split(",") for line in log[1:]]
    assert len(rows) == 4 and {"batch_usage", "batch_perplexity"} <= set(header)
    assert all(math.isfinite(float(value)) for row in rows for value in row)

    eval_cfg = {**PARAMS["evaluation"], "weights": PARAMS["weights"], "metrics": ["mse", "usage", "perplexity"]}
    metrics = evaluate_tokenizer(ckpt, digits_dir, tmp_path / "metrics.json", eval_cfg)["metrics"]
    assert 0.0 < metrics["usage"] <= 1.0 and metrics["perplexity"] >= 1.0 and math.isfinite(metrics["mse"])

    # Saved and loaded twice, the tokenizer gives the same tokens and decodes its indices to the
    # same codes it quantized to.
    first, _ = load_model(ckpt, torch.device("cpu"))
    second, _ = load_model(ckpt, torch.device("cpu"))
    images = data.load_split(digits_dir, "test").batch(torch.arange(8)) * 2.0 - 1.0
    with torch.no_grad():
        a, b = first.quantize(images), second.quantize(images)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.z_q, b.z_q)
        torch.testing.assert_close(first.quantizer.lookup(a.indices), a.z_q, rtol=1e-5, atol=1e-5)
