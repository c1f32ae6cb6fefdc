"""Whole-split measurements of a tokenizer: codebook counts and reconstruction error.

Used by evaluation (usage on the training split beside the test split) and by the
training loop at ``training.eval_every`` steps (``convergence.csv``: usage,
perplexity and MSE against steps, the convergence study). Batch statistics in
train_log.csv cannot stand in for these: a batch of B images holds far fewer
tokens than K codes.
"""
from __future__ import annotations

import torch

from . import metrics


@torch.no_grad()
def measure_split(model, split, batch_size: int, device: torch.device, with_mse: bool = True) -> dict:
    """Usage, perplexity, codes used and tokens counted over a whole split; MSE too for an autoencoder.

    The model is put in eval mode for the pass (no EMA or replacement updates) and
    returned to the mode it was in.
    """
    was_training = model.training
    model.eval()
    k = model.quantizer.codebook_size
    counts = torch.zeros(k, dtype=torch.long)
    mse = metrics.RunningMean()
    for start in range(0, len(split), batch_size):
        x = split.batch(torch.arange(start, min(start + batch_size, len(split)))).to(device)
        if with_mse:
            output, quantized = model(model.images_in(x))
            mse.add(metrics.mse_per_image(model.images_out(output), x))
        else:  # counts only: the same codes without the decoder (or classifier head), about half the work
            quantized = model.quantize(model.images_in(x))
        counts += torch.bincount(quantized.indices.flatten().cpu(), minlength=k)
    model.train(was_training)
    out = {"usage": metrics.codebook_usage(counts), "perplexity": metrics.perplexity(counts),
           "codes_used": int((counts > 0).sum()), "tokens": int(counts.sum())}
    if with_mse:
        out["mse"] = mse.value
    return out
