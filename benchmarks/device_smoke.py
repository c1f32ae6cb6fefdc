"""Train and evaluate one grid point of a params.yaml study twice on this machine's device.

Reports the wall time of each phase, the metrics, and whether the two runs gave
identical weights (determinism). Used to check the CUDA path, whose behaviour CI
(CPU only) cannot see:

    python benchmarks/device_smoke.py --study photo_codebook_size --quantizer vq --codebook-size 1024
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
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.io import load_tensors
from vqrepro.train import train_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--study", default="photo_codebook_size")
    p.add_argument("--quantizer", default="vq")
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--out", default=None, help="write the report as JSON here")
    args = p.parse_args()

    cfg = yaml.safe_load(Path(args.params).read_text())  # the schema check needs jsonschema; the smoke run does not
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
        report["identical_weights"] = all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])
        report["max_weight_difference"] = max(float((weights[0][n].float() - weights[1][n].float()).abs().max()) for n in weights[0])
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
