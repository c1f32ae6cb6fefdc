"""Encoder/decoder families (token priors join them in stage 2)."""
from .vqvae import VQVAE, ModelSettings

__all__ = ["VQVAE", "ModelSettings"]
