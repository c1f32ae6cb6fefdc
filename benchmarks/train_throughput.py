"""Training-step throughput and peak memory of the tokenizer at the papers' settings.

Measures forward + backward + Adam step of the full VQ-VAE (encoder, quantizer,
decoder) on random images, and the shared nearest-code search on its own, on the
GPU when one is visible (else the CPU, with fewer configurations). Prints a
Markdown table and writes JSON:

    python benchmarks/train_throughput.py --out benchmarks/train_throughput.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from vqrepro.models import VQVAE, ModelSettings
from vqrepro.quantizers import build_quantizer, nearest_code

CVQ = dict(hidden_channels=128, residual_layers=2, residual_channels=32, downsamples=2,
           activation="relu", output_activation="none", activate_latent=False)
NSVQ = dict(hidden_channels=256, residual_layers=6, residual_channels=256, downsamples=2,
            activation="leaky_relu", output_activation="tanh", activate_latent=True)
MINI = dict(hidden_channels=64, residual_layers=1, residual_channels=32, downsamples=2,
            activation="relu", output_activation="none", activate_latent=False)

# (label, model, channels, image side, batch, K, D)
GPU_CASES = [
    ("CVQ-VAE CIFAR10 (paper: batch 1024, K 512, D 64)", CVQ, 3, 32, 1024, 512, 64),
    ("CVQ-VAE CIFAR10, K 8192", CVQ, 3, 32, 1024, 8192, 64),
    ("NS-VQ CelebA-HQ 256 (paper: batch 16, K 1024, D 64)", NSVQ, 3, 256, 16, 1024, 64),
    ("NS-VQ CelebA-HQ 256, K 8192, D 3", NSVQ, 3, 256, 16, 8192, 3),
    ("mini (default study), batch 64", MINI, 3, 32, 64, 1024, 16),
]
CPU_CASES = [
    ("mini (default study), batch 64", MINI, 3, 32, 64, 1024, 16),
    ("CVQ-VAE CIFAR10, batch 64", CVQ, 3, 32, 64, 512, 64),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(device, method, model_settings, channels, side, batch, k, d, steps, warmup=3):
    torch.manual_seed(0)
    model = VQVAE(channels, build_quantizer({"method": method}, k, d), ModelSettings(**model_settings)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    images = torch.rand(batch, channels, side, side, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        recon, out = model(images)
        loss = F.mse_loss(recon, images) + sum(out.losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"ms_per_step": 1e3 * seconds, "images_per_s": batch / seconds, "peak_mib": peak}


def time_search(device, n, k, d, repeats=5):
    torch.manual_seed(0)
    z, codebook = torch.randn(n, d, device=device), torch.randn(k, d, device=device)
    nearest_code(z, codebook)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    for _ in range(repeats):
        nearest_code(z, codebook)
    sync(device)
    seconds = (time.perf_counter() - start) / repeats
    extra = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None
    return {"ms": 1e3 * seconds, "extra_peak_mib": extra, "full_matrix_mib": n * k * 4 / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--deterministic", action="store_true", help="request deterministic kernels, as training jobs do")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.deterministic:
        from vqrepro.runtime import configure

        configure(torch.get_num_threads(), 0, str(device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    steps = args.steps if device.type == "cuda" else 5
    results = {"deterministic": args.deterministic, "device": name, "torch": torch.__version__, "threads": torch.get_num_threads(), "training": [], "search": []}
    print(f"device: {name}, torch {torch.__version__}, deterministic kernels: {args.deterministic}\n")
    print("| configuration | method | ms/step | images/s | peak GPU MiB |\n|---|---|---|---|---|")
    for label, model, channels, side, batch, k, d in cases:
        for method in ("vq", "ema"):
            r = time_training(device, method, model, channels, side, batch, k, d, steps)
            results["training"].append({"case": label, "method": method, **r})
            peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "n/a (CPU)"
            print(f"| {label} | {method} | {r['ms_per_step']:.1f} | {r['images_per_s']:.0f} | {peak} |")
    n = 65536 if device.type == "cuda" else 16384
    print(f"\nnearest-code search, N = {n} tokens, D = 64\n\n| K | ms | extra peak MiB | full N x K matrix MiB |\n|---|---|---|---|")
    for k in (512, 4096, 16384, 65536):
        r = time_search(device, n, k, 64)
        results["search"].append({"n": n, "k": k, "d": 64, **r})
        extra = f"{r['extra_peak_mib']:.0f}" if r["extra_peak_mib"] is not None else "n/a (CPU)"
        print(f"| {k} | {r['ms']:.1f} | {extra} | {r['full_matrix_mib']:.0f} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
