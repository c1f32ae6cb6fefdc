"""The GPU check in one command: a paper config rehearsed on CUDA, with throughput, memory and determinism.

    python benchmarks/device_smoke.py                                   # configs/paper/nsvq_celebahq.yaml
    python benchmarks/device_smoke.py --config configs/paper/cvq_cifar10.yaml --steps 100
    python benchmarks/device_smoke.py --device cpu --steps 3            # the same path on CPU (a dry check)
    python benchmarks/device_smoke.py --generation-study digits_generation   # stage 2 on its first tokenizer

For each study the config runs, the first grid point of each quantizer is trained twice at the
paper's architecture, image size and batch size on stand-in data in the data set's published
layout (vqrepro/layouts.py; no real data needed), then evaluated. Reported per run: steps per
second (after the first step, which pays CUDA's start-up), peak GPU memory, whether the two runs
gave bit-identical weights, and the metrics. Written to benchmarks/results/device_smoke_<config>.json;
docs/benchmarks.md records the figures of each GPU it ran on.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vqrepro import config, data, rehearsal
from vqrepro.classifier import train_classifier
from vqrepro.evaluate import evaluate_tokenizer
from vqrepro.generation import evaluate_generation, sample_prior
from vqrepro.io import load_tensors
from vqrepro.prior import encode_tokens, train_prior
from vqrepro.train import train_tokenizer

RESULTS = Path(__file__).resolve().parent / "results"


def timed(report: dict, name: str, func, *args, **kwargs):
    began = time.perf_counter()
    result = func(*args, **kwargs)
    report[f"{name}_seconds"] = round(time.perf_counter() - began, 2)
    return result


def same_weights(a: dict, b: dict) -> tuple[bool, float]:
    return (all(torch.equal(a[n], b[n]) for n in a),
            max(float((a[n].float() - b[n].float()).abs().max()) for n in a))


def timed_training(settings: dict, data_dir: Path, out: Path, device: str, threads: int) -> tuple[Path, float, float]:
    """(checkpoint, seconds for the whole run, seconds for its first step alone: start-up)."""
    one_step = dict(settings, training=dict(settings["training"], steps=1, checkpoint_every=1))
    began = time.perf_counter()
    train_tokenizer(one_step, data_dir, out.with_name(out.name + "_first_step"), threads=threads, device=device)
    first = time.perf_counter() - began
    began = time.perf_counter()
    ckpt = train_tokenizer(settings, data_dir, out, threads=threads, device=device)
    return ckpt, time.perf_counter() - began, first


def smoke(paper_config: str, steps: int, device: str, threads: int, quantizers: list[str] | None) -> dict:
    report = {"config": paper_config, "steps": steps, "device": device,
              "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "torch": torch.__version__, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = rehearsal.rehearsal_config(paper_config, tmp / "standins", steps=steps, batch=None)
        largest = max(cfg["training"][cfg["studies"][s]["training"]]["batch_size"] for s in cfg["run_studies"])
        rehearsal.write_standins(cfg, tmp / "standins", images={"train": largest, "test": min(largest, 64)})
        for study in cfg["run_studies"]:
            dataset = cfg["studies"][study]["dataset"]
            data_dir = tmp / "data" / dataset
            if not data_dir.exists():
                data.prepare(dataset, cfg["datasets"][dataset], data_dir)
            seen = set()
            for key in config.grid(cfg, study):
                if key.quantizer in seen or (quantizers and key.quantizer not in quantizers):
                    continue
                seen.add(key.quantizer)
                settings = config.train_settings(cfg, key)
                run = {"run": key.path, "batch_size": settings["training"]["batch_size"]}
                weights = []
                for attempt in ("first", "second"):
                    if device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    out = tmp / "runs" / key.path / attempt
                    ckpt, seconds, startup = timed_training(settings, data_dir, out, device, threads)
                    run[f"steps_per_second_{attempt}"] = round((steps - 1) / max(seconds - startup, 1e-9), 2)
                    run[f"first_step_seconds_{attempt}"] = round(startup, 2)
                    if device == "cuda":
                        run[f"peak_memory_gib_{attempt}"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                    weights.append(load_tensors(ckpt)["model"])
                result = evaluate_tokenizer(ckpt, data_dir, out / "metrics.json", config.eval_settings(cfg),
                                            threads=threads, device=device)
                run["metrics"] = result["metrics"]
                run["identical_weights"], run["max_weight_difference"] = same_weights(*weights)
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
    return report


def generation_smoke(cfg: dict, study: str, threads: int) -> dict:
    """Stage 2 of a params.yaml generation study on the device: tokenizer, token grids, classifier, each prior trained twice, samples, scores."""
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
    p.add_argument("--config", default="configs/paper/nsvq_celebahq.yaml", help="the paper config to rehearse")
    p.add_argument("--steps", type=int, default=50, help="training steps per run (the first is timed apart)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--quantizers", nargs="*", default=None, help="only these presets (default: every one)")
    p.add_argument("--generation-study", default=None,
                   help="instead: stage 2 of this params.yaml generation study (e.g. digits_generation)")
    p.add_argument("--out", default=None, help="default: benchmarks/results/device_smoke_<config>.json")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device_smoke: no CUDA device here; this check is for a GPU machine "
                         "(--device cpu runs the same path on CPU)")
    if args.steps < 2:
        raise SystemExit("device_smoke: --steps must be at least 2 (the first step is timed apart)")
    suffix = "" if args.device == "cuda" else "_cpu"
    if args.generation_study:
        report = generation_smoke(config.load("params.yaml"), args.generation_study, args.threads)
        out = Path(args.out) if args.out else RESULTS / f"device_smoke_{args.generation_study}{suffix}.json"
    else:
        report = smoke(args.config, args.steps, args.device, args.threads, args.quantizers)
        out = Path(args.out) if args.out else RESULTS / f"device_smoke_{Path(args.config).stem}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"device_smoke: written to {out}")


if __name__ == "__main__":
    main()
