"""Stage 2: token grids, prior training (resumable), sampling and likelihood.

Settings of a prior come as one dict (a ``priors:`` preset of params.yaml):
model (kind, layers, heads, width, dropout), training (steps, batch_size, lr,
weight_decay, log_every, checkpoint_every, snapshot_every) and sampling
(num_samples, temperature, top_k, decode_steps, choice_temperature); editing only
the sampling keys re-samples and re-scores without retraining.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import runtime
from .data import batch_indices, load_split
from .io import load_tensors, save_tensors
from .models.transformer import PriorSettings, TokenTransformer
from .runs import PRIOR, PRIOR_LOG, RESUME
from .checkpoints import TrainLog, discard_resume, load_model, resume, save_resume
from .errors import NonFiniteLossError

MODEL_KEYS = ("kind", "layers", "heads", "width", "dropout")


# --------------------------------------------------------------------------- tokens


@torch.no_grad()
def encode_tokens(ckpt: str | Path, data_dir: str | Path, split: str, out: str | Path, threads: int = 1,
                  device: str = "auto", batch_size: int = 256) -> dict:
    """Write the code grids of one split: {"tokens": (N, H, W) long, identity of the tokenizer}."""
    dev = runtime.configure(threads, 0, device)
    model, settings = load_model(ckpt, dev)
    images = load_split(data_dir, split)
    grids = []
    for start in range(0, len(images), batch_size):
        x = images.batch(torch.arange(start, min(start + batch_size, len(images)))).to(dev)
        grids.append(model.quantize(model.images_in(x)).indices.cpu())
    content = {
        "tokens": torch.cat(grids),
        "codebook_size": settings["codebook_size"],
        "tokenizer": str(ckpt),
        "tokenizer_settings_hash": runtime.settings_hash(settings),
        "split": split,
    }
    if images.labels is not None:
        content["labels"] = images.labels
    save_tensors(out, content)
    return content


# --------------------------------------------------------------------------- training


def build_prior(settings: dict, codebook_size: int, length: int) -> TokenTransformer:
    return TokenTransformer(codebook_size, length, PriorSettings(**{k: settings[k] for k in MODEL_KEYS}))


def cosine_mask_ratio(r: torch.Tensor) -> torch.Tensor:
    """MaskGIT's schedule: share of tokens masked at progress r in [0, 1]; 1 at r = 0, 0 at r = 1."""
    return torch.cos(0.5 * math.pi * r)


def prior_loss(model: TokenTransformer, tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy in nats per predicted token."""
    if model.kind == "autoregressive":
        logits = model(model.shifted_input(tokens))
        return F.cross_entropy(logits.reshape(-1, model.codebook_size), tokens.reshape(-1))
    b, length = tokens.shape
    ratio = cosine_mask_ratio(torch.rand(b, 1, generator=generator).to(tokens.device))
    n_masked = (ratio * length).ceil().clamp(min=1)
    scores = torch.rand(b, length, generator=generator).to(tokens.device)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    masked = ranks < n_masked
    logits = model(torch.where(masked, torch.full_like(tokens, model.special), tokens))
    return F.cross_entropy(logits[masked], tokens[masked])


def train_prior(settings: dict, tokens_path: str | Path, out_dir: str | Path, seed: int, threads: int = 1,
                device: str = "auto") -> Path:
    """Train one prior; ``prior.pt`` holds the final weights and the snapshots taken every ``snapshot_every`` steps."""
    out_dir = Path(out_dir)
    resume_path, final_path = out_dir / RESUME, out_dir / PRIOR
    digest = runtime.settings_hash({**settings, "seed": seed, "tokens": str(tokens_path)})
    dev = runtime.configure(threads, seed, device)
    data = load_tensors(tokens_path)
    tokens = data["tokens"].flatten(1)
    k, length = data["codebook_size"], tokens.shape[1]
    model = build_prior(settings, k, length).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    state = resume(resume_path, digest, model, optimizer)
    start, snapshots = (state["step"], state["snapshots"]) if state else (0, {})

    log = TrainLog(out_dir / PRIOR_LOG, state)
    steps, batch_size = settings["steps"], settings["batch_size"]
    model.train()
    began = time.time()
    for step in tqdm(range(start, steps), initial=start, total=steps, desc=str(out_dir), file=sys.stderr, mininterval=10.0):
        batch = tokens[batch_indices(len(tokens), batch_size, seed, step)].to(dev)
        loss = prior_loss(model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"prior loss is {loss.item()} at step {step} in {out_dir}; no checkpoint written. "
                                     "Lower the prior preset's lr.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % settings["log_every"] == 0 or done == steps:
            log.add({"step": done, "loss": loss.item(), "bits_per_token": loss.item() / math.log(2)})
        if done % settings["snapshot_every"] == 0 and done < steps:
            snapshots[str(done)] = {name: t.detach().clone() for name, t in model.state_dict().items()}
        if done % settings["checkpoint_every"] == 0 and done < steps:
            log.flush()
            save_resume(resume_path, digest, model, optimizer, done, snapshots=snapshots, log_rows=log.rows)
    log.flush()
    snapshots[str(steps)] = model.state_dict()
    save_tensors(final_path, {
        "model": model.state_dict(), "snapshots": snapshots, "codebook_size": k, "grid": list(data["tokens"].shape[1:]),
        "settings": json.dumps(settings, sort_keys=True), "settings_hash": digest, "train_seconds": time.time() - began,
    })
    discard_resume(resume_path)
    return final_path


def prior_at(content: dict, device: torch.device, step: str | None = None) -> TokenTransformer:
    """The prior of a loaded prior.pt at one snapshot step (None: final weights)."""
    settings = json.loads(content["settings"])
    model = build_prior(settings, content["codebook_size"], math.prod(content["grid"]))
    model.load_state_dict(content["snapshots"][step] if step else content["model"])
    return model.to(device).eval()


# --------------------------------------------------------------------------- likelihood and sampling


@torch.no_grad()
def bits_per_token(model: TokenTransformer, tokens: torch.Tensor, batch_size: int = 256) -> float:
    """Negative log-likelihood of the sequences in bits per token.

    Autoregressive: the model's own factorisation. MaskGIT defines no likelihood of
    its own; we score it under raster-order decoding (token i predicted from tokens
    < i with the rest masked), which is a proper likelihood of the sequence and an
    upper bound on what any decoding order of the same network could give.
    """
    total, count = 0.0, 0
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size]
        if model.kind == "autoregressive":
            logits = model(model.shifted_input(batch))
            total += F.cross_entropy(logits.reshape(-1, model.codebook_size), batch.reshape(-1), reduction="sum").item()
        else:
            for i in range(batch.shape[1]):
                visible = batch.clone()
                visible[:, i:] = model.special
                logits = model(visible)[:, i]
                total += F.cross_entropy(logits, batch[:, i], reduction="sum").item()
        count += batch.numel()
    return total / count / math.log(2)


def _filter_top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    if top_k is None or top_k >= logits.shape[-1]:
        return logits
    kth = logits.topk(top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


@torch.no_grad()
def sample_autoregressive(model: TokenTransformer, n: int, temperature: float, top_k: int | None,
                          generator: torch.Generator, device: torch.device) -> torch.Tensor:
    tokens = torch.full((n, model.length), model.special, dtype=torch.long, device=device)
    for i in range(model.length):
        logits = model(model.shifted_input(tokens))[:, i] / temperature
        probs = F.softmax(_filter_top_k(logits, top_k), dim=-1)
        tokens[:, i] = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)
    return tokens


def maskgit_unmasked_counts(length: int, steps: int) -> list[int]:
    """How many tokens are fixed after each decoding step; the last step fixes all of them."""
    counts = []
    for t in range(1, steps + 1):
        still_masked = math.floor(float(cosine_mask_ratio(torch.tensor(t / steps))) * length)
        counts.append(max(length - still_masked, counts[-1] + 1 if counts else 1))
    counts[-1] = length
    return [min(c, length) for c in counts]


@torch.no_grad()
def sample_maskgit(model: TokenTransformer, n: int, temperature: float, top_k: int | None, steps: int,
                   generator: torch.Generator, device: torch.device, choice_temperature: float = 0.0) -> torch.Tensor:
    """Iterative parallel decoding: at each step keep the most confident predictions, re-mask the rest.

    Confidence is the log-probability of the drawn token plus Gumbel noise scaled by
    choice_temperature * (1 - t/T), as in MaskGIT's reference code (4.5 there), which
    keeps the early steps from always fixing the same easy positions.
    """
    length = model.length
    tokens = torch.full((n, length), model.special, dtype=torch.long, device=device)
    for t, fixed_after in enumerate(maskgit_unmasked_counts(length, steps), start=1):
        masked = tokens == model.special
        logits = _filter_top_k(model(tokens) / temperature, top_k)
        probs = F.softmax(logits, dim=-1)
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]).cpu(), 1, generator=generator).view(n, length).to(device)
        confidence = probs.gather(-1, drawn.unsqueeze(-1)).squeeze(-1).clamp_min(1e-30).log()
        uniform = torch.rand(n, length, generator=generator).clamp(1e-20, 1.0 - 1e-7).to(device)
        confidence = confidence + choice_temperature * (1.0 - t / steps) * -torch.log(-torch.log(uniform))
        confidence = torch.where(masked, confidence, torch.full_like(confidence, float("inf")))
        keep = confidence.argsort(dim=1, descending=True).argsort(dim=1) < fixed_after
        tokens = torch.where(masked & keep, drawn, tokens)
    return tokens


def sample_tokens(model: TokenTransformer, settings: dict, n: int, seed: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if model.kind == "autoregressive":
        return sample_autoregressive(model, n, settings["temperature"], settings["top_k"], generator, device)
    return sample_maskgit(model, n, settings["temperature"], settings["top_k"], settings["decode_steps"], generator, device,
                          settings["choice_temperature"])
