"""Train and evaluate one grid point of a params.yaml study twice on this machine's device.

Reports the wall time of each phase, the metrics, and whether the two runs gave
identical weights (determinism). Used to check the CUDA path, whose behaviour CI
(CPU only) cannot see:

    python benchmarks/device_smoke.py --study photo_codebook_size --quantizer vq --codebook-size 1024
    python benchmarks/device_smoke.py --generation-study digits_generation   # stage 2 on its first tokenizer
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vqrepro import config, data
from vqrepro.classifier import train_classifier
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.generation import evaluate_generation, sample_prior
from vqrepro.io import load_tensors
from vqrepro.prior import encode_tokens, train_prior
from vqrepro.train import train_tokenizer


def timed(report: dict, name: str, func, *args, **kwargs):
    began = time.perf_counter()
    result = func(*args, **kwargs)
    report[f"{name}_seconds"] = round(time.perf_counter() - began, 2)
    return result


def same_weights(a: dict, b: dict) -> tuple[bool, float]:
    return (all(torch.equal(a[n], b[n]) for n in a),
            max(float((a[n].float() - b[n].float()).abs().max()) for n in a))


def generation_smoke(cfg: dict, study: str, threads: int) -> dict:
    """Stage 2 on the device: tokenizer, token grids, classifier, each prior trained twice, samples, scores."""
    keys = config.generation_grid(cfg, study)
    tokenizer = keys[0].tokenizer
    classifier = cfg["generation_studies"][study]["classifier"]
    report = {"study": study, "tokenizer": tokenizer.path,
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data.prepare(tokenizer.dataset, cfg["datasets"][tokenizer.dataset], tmp / "data")
        ckpt = timed(report, "train_tokenizer", train_tokenizer, config.train_settings(cfg, tokenizer), tmp / "data",
                     tmp / "tok", threads=threads)
        for split in ("train", "test"):
            timed(report, f"encode_{split}", encode_tokens, ckpt, tmp / "data", split, tmp / f"tokens_{split}.pt", threads=threads)
        clf = tmp / "clf" / "classifier.pt"
        timed(report, "train_classifier", train_classifier, cfg["classifiers"][classifier], tmp / "data", clf, threads=threads)
        for key in [k for k in keys if k.tokenizer == tokenizer]:
            weights = []
            for attempt in ("first", "second"):
                out = tmp / f"{key.prior}_{attempt}"
                prior = timed(report, f"{key.prior}_train_{attempt}", train_prior, config.prior_settings(cfg, key.prior),
                              tmp / "tokens_train.pt", out, key.seed, threads=threads)
                weights.append(load_tensors(prior)["model"])
            settings = config.sampling_settings(cfg, key.prior, key.seed)
            timed(report, f"{key.prior}_sample", sample_prior, prior, ckpt, settings, out / "samples.pt", threads=threads)
            result = timed(report, f"{key.prior}_evaluate", evaluate_generation, out / "samples.pt", prior,
                           tmp / "tokens_test.pt", tmp / "data", clf, settings, out / "generation.json", threads=threads)
            report[f"{key.prior}_metrics"] = result["metrics"]
            report[f"{key.prior}_identical_weights"], report[f"{key.prior}_max_weight_difference"] = same_weights(*weights)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--study", default="photo_codebook_size")
    p.add_argument("--quantizer", default="vq")
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--generation-study", default=None, help="run stage 2 of this generation study instead")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    args = p.parse_args()

    cfg = yaml.safe_load(Path(args.params).read_text())  # the schema check needs jsonschema; the smoke run does not
    if args.generation_study:
        report = generation_smoke(cfg, args.generation_study, args.threads)
        print(json.dumps(report, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2))
        return
    key = next(k for k in config.grid(cfg, args.study) if k.quantizer == args.quantizer and k.codebook_size == args.codebook_size)
    settings = config.train_settings(cfg, key)
    eval_cfg = config.eval_settings(cfg)
    report = {"run": key.path, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        data.prepare(key.dataset, cfg["datasets"][key.dataset], tmp / "data")
        report["prepare_seconds"] = round(time.perf_counter() - began, 2)
        weights = []
        for attempt in ("first", "second"):
            began = time.perf_counter()
            ckpt = train_tokenizer(settings, tmp / "data", tmp / attempt, threads=args.threads)
            report[f"train_seconds_{attempt}"] = round(time.perf_counter() - began, 2)
            began = time.perf_counter()
            result = evaluate_tokenizer(ckpt, tmp / "data", tmp / f"{attempt}.json", eval_cfg, threads=args.threads)
            report[f"eval_seconds_{attempt}"] = round(time.perf_counter() - began, 2)
            report[f"metrics_{attempt}"] = result["metrics"]
            weights.append(load_tensors(ckpt)["model"])
        report["identical_weights"], report["max_weight_difference"] = same_weights(*weights)
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
