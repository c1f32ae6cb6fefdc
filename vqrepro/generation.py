"""Scores of one trained prior: likelihood, sample usage, and distances to real images.

For every snapshot of the prior (the curve over training) and for the final weights:
- bits per token on the test split's token grids,
- codebook usage of the sampled tokens,
- Fréchet distance and precision/recall (k = 3) in the feature space of the
  pipeline's own classifier, samples against the test images,
and, for the final weights, gFID through torch-fidelity when the Inception weights
are on disk (else n/a with the reason).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import metrics, runtime, weights
from .classifier import load_classifier
from .data import load_split
from .evaluate import rfid, to_uint8
from .io import load_tensors, save_tensors, write_json
from .prior import bits_per_token, prior_at, sample_tokens
from .checkpoints import load_model


PR_NEIGHBOURS = 3  # k of the k-NN balls of precision and recall


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN balls."""

    def radii(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x)
        return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0

    def covered(points: torch.Tensor, centres: torch.Tensor, r: torch.Tensor) -> float:
        return float((torch.cdist(points, centres) <= r[None, :]).any(dim=1).float().mean())

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def feature_scores(classifier, real_feats: torch.Tensor, images: torch.Tensor) -> tuple[dict, dict[str, str]]:
    """(scores, {metric: why it is n/a})."""
    with torch.no_grad():
        fake = classifier.features(images).double().cpu()
    real = real_feats.double()
    fd = metrics.frechet_distance(real.mean(0).numpy(), np.cov(real.numpy(), rowvar=False),
                                  fake.mean(0).numpy(), np.cov(fake.numpy(), rowvar=False))
    if min(len(real), len(fake)) <= PR_NEIGHBOURS:  # a k-NN ball needs k other points
        why = (f"precision and recall need more than {PR_NEIGHBOURS} samples and test images (k-NN balls, "
               f"k = {PR_NEIGHBOURS}); there were {len(fake)} and {len(real)}")
        return {"fd_classifier": fd, "precision": None, "recall": None}, {"precision": why, "recall": why}
    precision, recall = precision_recall(real.float(), fake.float())
    return {"fd_classifier": fd, "precision": precision, "recall": recall}, {}


@torch.no_grad()
def sample_prior(prior_path: str | Path, tokenizer_path: str | Path, settings: dict, out: str | Path, threads: int = 1,
                 device: str = "auto") -> dict:
    """Sample ``num_samples`` token grids from every snapshot of a prior and decode them with the tokenizer."""
    seed = settings["sample_seed"]
    dev = runtime.configure(threads, seed, device)
    tokenizer, _ = load_model(tokenizer_path, dev)
    content = load_tensors(prior_path)  # read and checksummed once; every snapshot is built from it
    grid = content["grid"]
    samples = {}
    for step in sorted(content["snapshots"], key=int):
        model = prior_at(content, dev, step)
        tokens = sample_tokens(model, settings, settings["num_samples"], seed, dev).view(-1, *grid)
        images = tokenizer.images_out(tokenizer.decode_indices(tokens))
        samples[step] = {"tokens": tokens.cpu(), "images": to_uint8(images).cpu()}
    result = {"samples": samples, "final_step": max(samples, key=int), "codebook_size": content["codebook_size"]}
    save_tensors(out, result)
    return result


@torch.no_grad()
def evaluate_generation(samples_path: str | Path, prior_path: str | Path, test_tokens: str | Path, data_dir: str | Path,
                        classifier_path: str | Path, settings: dict, out: str | Path, threads: int = 1,
                        device: str = "auto") -> dict:
    began = time.time()
    dev = runtime.configure(threads, settings["sample_seed"], device)
    samples = load_tensors(samples_path)
    classifier = load_classifier(classifier_path, dev)
    test_images = load_split(data_dir, "test")
    real = test_images.batch(torch.arange(len(test_images))).to(dev)
    real_feats = classifier.features(real).cpu()
    test_grid = load_tensors(test_tokens)["tokens"].flatten(1).to(dev)
    k = samples["codebook_size"]
    content = load_tensors(prior_path)

    curve, missing = [], {}
    for step in sorted(samples["samples"], key=int):
        model = prior_at(content, dev, step)
        tokens, images = samples["samples"][step]["tokens"], samples["samples"][step]["images"]
        row = {"step": int(step), "bits_per_token": bits_per_token(model, test_grid),
               "sample_usage": metrics.codebook_usage(torch.bincount(tokens.flatten(), minlength=k))}
        scores, not_available = feature_scores(classifier, real_feats, images.to(dev).float() / 255.0)
        row.update(scores)
        missing.update(not_available)
        curve.append(row)

    final = dict(curve[-1])
    fid_path, reason = weights.find("inception", settings["weights"])
    if fid_path is None:
        final["gfid"] = None
        missing["gfid"] = reason
    else:
        final_images = samples["samples"][samples["final_step"]]["images"]
        final["gfid"] = rfid(to_uint8(real).cpu(), final_images, fid_path, dev)
    result = {"metrics": final, "curve": curve, "missing": missing, "num_samples": settings["num_samples"],
              "test_images": len(test_images), "provenance": runtime.provenance(settings, dev, time.time() - began)}
    write_json(out, result)
    return result
