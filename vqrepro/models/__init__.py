"""Encoder/decoder families (token priors join them in stage 2) and VQ-bottleneck classifiers."""
from .vq_classifier import ClassifierSettings, VQClassifier
from .vqvae import VQVAE, ModelSettings

__all__ = ["VQVAE", "ClassifierSettings", "ModelSettings", "VQClassifier"]
