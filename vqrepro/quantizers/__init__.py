"""The quantizer registry: one name per method, resolved from params.yaml.

As a library (no Snakemake or DVC involved)::

    from vqrepro.quantizers import CVQQuantizer, create
    quantizer = CVQQuantizer(codebook_size=1024, code_dim=64, decay=0.99)  # paper defaults otherwise
    quantizer = create("cvq", codebook_size=1024, code_dim=64, decay=0.99)  # the same, by name
    out = quantizer(feature_map, dim=1)      # (B, D, H, W); tokens (..., D) need no dim
    loss = task_loss + out.loss              # out.losses holds the named terms
    optimizer.step(); quantizer.advance()    # the method's per-step hooks

Adding a method: write one module with a ``Quantizer`` subclass and its
``Settings`` dataclass, add one line to ``REGISTRY``, and add its test file
``tests/test_quantizer_<name>.py``.
"""
from __future__ import annotations

import dataclasses
import importlib

from .base import Quantizer, QuantizerOutput
from .search import nearest_code


def _method(module: str, class_name: str) -> type[Quantizer]:
    return getattr(importlib.import_module(f".{module}", __name__), class_name)


# One line per method: registry name -> its module and class (the order `vqrepro quantizers` lists).
REGISTRY: dict[str, type[Quantizer]] = {
    "vq": _method("vq", "VectorQuantizer"),
    "ema": _method("ema", "EMAQuantizer"),
    "vqgan_fc": _method("fc", "VQGANFCQuantizer"),
    "vqvae2": _method("vqvae2", "VQVAE2Quantizer"),
    "cvq": _method("cvq", "CVQQuantizer"),
    "simvq": _method("simvq", "SimVQQuantizer"),
    "nsvq": _method("nsvq", "NSVQuantizer"),
    "transvq": _method("transvq", "TransVQ"),
    "sqvae": _method("sqvae", "SQVAEQuantizer"),
    "gumbel": _method("gumbel", "GumbelQuantizer"),
    "fsq": _method("fsq", "FSQQuantizer"),
    "lfq": _method("lfq", "LFQQuantizer"),
}
globals().update({cls.__name__: cls for cls in REGISTRY.values()})  # from vqrepro.quantizers import CVQQuantizer


def quantizer_class(method: str) -> type[Quantizer]:
    try:
        return REGISTRY[method]
    except KeyError:
        raise KeyError(f"unknown quantizer method {method!r}; known methods: {sorted(REGISTRY)}") from None


def create(method: str, codebook_size: int, code_dim: int, **settings) -> Quantizer:
    """Build a registered method by name, with its paper defaults and keyword overrides."""
    cls = quantizer_class(method)
    return cls(codebook_size, code_dim, cls.settings_from(settings))


def build_quantizer(preset: dict, codebook_size: int, code_dim: int) -> Quantizer:
    """Build a quantizer from a params.yaml preset ({"method": name, **settings})."""
    values = dict(preset)
    return create(values.pop("method"), codebook_size, code_dim, **values)


def describe() -> list[dict]:
    """Every method with its source and default settings (for ``vqrepro quantizers``)."""
    return [
        {"method": name, "paper": cls.paper, "defaults": dataclasses.asdict(cls.Settings())}
        for name, cls in REGISTRY.items()
    ]


__all__ = ["REGISTRY", "Quantizer", "QuantizerOutput", "build_quantizer", "create", "describe", "nearest_code",
           "quantizer_class", *(cls.__name__ for cls in REGISTRY.values())]
