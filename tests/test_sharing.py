"""Runs shared across studies: one trained run per set of weights, read at each study's step.

The defining property: a grid point read from a shared (longer, measuring) run has the same
weights, metrics, log and curve as the same grid point trained on its own, bit for bit on the CPU.
"""
import json

import pytest
import torch
from test_train import digits_dir  # noqa: F401  (the prepared digits, a fixture)

from vqrepro import config as vqconfig
from vqrepro import sharing
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.io import load_tensors
from vqrepro.readings import read_run
from vqrepro.runs import CHECKPOINT, CONVERGENCE, METRICS, TRAIN_LOG, RunKey
from vqrepro.train import train_tokenizer


def keys_of(config, study, quantizer, seed=0):
    return [key for key in vqconfig.grid(config, study) if key.quantizer == quantizer and key.seed == seed]


def test_the_default_studies_share_runs_across_names_and_lengths(params):
    readings = sharing.plan(params)
    usage, = keys_of(params, "cvq_usage", "vq")
    curve, = keys_of(params, "cvq_usage_convergence", "vq")
    recon = RunKey("ste_recon", "photo_crops", "vq", 1024, 16, 0)
    run = readings[usage].run
    assert readings[curve].run is run and readings[recon].run is run  # three studies, one trained run
    assert run.steps == 2000 and run.snapshots == (400,)  # ste_recon's 400 steps: a snapshot of the 2,000
    assert readings[recon].step == 400 and readings[recon].measure_at == ()
    assert readings[curve].measure_at == tuple(range(200, 2001, 200)) and readings[usage].measure_at == ()
    assert set(readings[recon].log_at) | set(readings[usage].log_at) <= set(run.log_at)
    grid = RunKey("nsvq_grid", "mnist_5k", "transvq", 1024, 64, 0)
    assert readings[grid].run.steps == 4000 and readings[grid].step == 1500  # the convergence run's snapshot
    other_seed = RunKey("cvq_usage", "photo_crops", "vq", 1024, 16, 1)
    assert readings[other_seed].run is not run
    assert len(sharing.trained_runs(readings)) < len(readings)


def test_a_study_name_or_preset_name_does_not_split_a_run(params_copy):
    config = params_copy
    config["studies"]["renamed"] = dict(config["studies"]["cvq_usage"])
    config["training"]["same_loop"] = dict(config["training"][config["studies"]["cvq_usage"]["training"]])
    config["studies"]["renamed"]["training"] = "same_loop"
    a, = keys_of(config, "cvq_usage", "vq")
    b, = keys_of(config, "renamed", "vq")
    readings = sharing.plan_keys(config, [a, b])
    assert readings[a].run == readings[b].run and readings[a].step == readings[b].step
    config["training"]["same_loop"]["lr"] *= 2  # a weight-determining setting: a run of its own
    readings = sharing.plan_keys(config, [a, b])
    assert readings[a].run != readings[b].run


def two_studies(params, method):
    """A 24-step study measuring every 8 steps and a 10-step study of the same weights (tiny model)."""
    config = json.loads(json.dumps(params))
    config["models"]["tiny"] = dict(config["models"]["mini_digits"], hidden_channels=16, residual_channels=8)
    base = dict(config["training"]["digits_mini"], batch_size=32, checkpoint_every=7)
    config["training"]["long"] = dict(base, steps=24, log_every=3, eval_every=8)
    config["training"]["short"] = dict(base, steps=10, log_every=5, eval_every=0)
    for name, loop in (("long_study", "long"), ("short_study", "short")):
        config["studies"][name] = {"dataset": "digits", "model": "tiny", "training": loop, "quantizers": [method],
                                   "codebook_sizes": [16], "code_dims": [4], "seeds": [0]}
    return config


@pytest.mark.parametrize("method", ["ema", "sqvae"])  # sqvae draws Gumbel noise every training step
def test_shared_and_prefix_readings_equal_separately_trained_runs(tmp_path, params, digits_dir, method):
    config = two_studies(params, method)
    evaluation = {**vqconfig.eval_settings(config), "metrics": ["mse", "usage"]}
    keys = vqconfig.grid(config, "long_study") + vqconfig.grid(config, "short_study")
    readings = sharing.plan_keys(config, keys)
    run = readings[keys[0]].run
    assert readings[keys[1]].run is run and run.snapshots == (10,)

    shared = tmp_path / "runs" / run.path
    final = train_tokenizer(run.settings, digits_dir, shared, readings=run.readings_settings(), evaluation=evaluation)
    evaluate_tokenizer(final, digits_dir, shared / METRICS, evaluation)
    for key in keys:
        read_run(readings[key].settings(), tmp_path / "read" / key.path, runs_dir=tmp_path / "runs")

        alone = tmp_path / "alone" / key.path
        ckpt = train_tokenizer(vqconfig.train_settings(config, key), digits_dir, alone)
        evaluate_tokenizer(ckpt, digits_dir, alone / METRICS, evaluation)

        read = tmp_path / "read" / key.path
        a, b = load_tensors(read / CHECKPOINT)["model"], load_tensors(alone / CHECKPOINT)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a), key
        metrics_read, metrics_alone = (json.loads((folder / METRICS).read_text()) for folder in (read, alone))
        assert metrics_read["metrics"] == metrics_alone["metrics"] and metrics_read["tokens"] == metrics_alone["tokens"]
        for name in (TRAIN_LOG, CONVERGENCE):
            assert (read / name).read_bytes() == (alone / name).read_bytes(), (key.study, name)
    long_curve = (tmp_path / "read" / keys[0].path / CONVERGENCE).read_text().splitlines()
    assert [row.split(",")[0] for row in long_curve[1:]] == ["8", "8", "16", "16", "24", "24"]


@pytest.mark.parametrize("lose_snapshot", [False, True])
def test_a_killed_shared_run_resumes_with_its_snapshots_or_starts_over_without_them(tmp_path, params, digits_dir,
                                                                                    lose_snapshot):
    """Snapshots are no rule outputs (Snakemake would delete them with a failed job, and a resumed run could
    not write them again): a rerun continues from resume.pt when its snapshots are there, and trains from
    step 0 when one is gone. Either way the weights equal an uninterrupted run's."""
    from conftest import kill_after_first_checkpoint_then_rerun
    from test_train import tiny_settings, train_cmd

    settings = tiny_settings(params, steps=400, checkpoint_every=20)
    readings = {"snapshots": [10], "measure_at": [], "log_at": list(range(5, 401, 5))}
    reference = tmp_path / "reference"
    train_tokenizer(settings, digits_dir, reference, readings=readings)

    out = tmp_path / "killed"
    lost = ("snapshots/step10/ckpt.pt",) if lose_snapshot else ()
    rerun, _ = kill_after_first_checkpoint_then_rerun(
        train_cmd(settings, digits_dir, out) + ["--readings", json.dumps(readings)], out, CHECKPOINT, 400,
        rule_outputs=(CHECKPOINT, TRAIN_LOG, *lost))
    assert ("training from step 0" in rerun.stderr) == lose_snapshot
    for name in (CHECKPOINT, "snapshots/step10/ckpt.pt"):
        a, b = load_tensors(reference / name)["model"], load_tensors(out / name)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
