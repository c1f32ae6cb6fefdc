"""What a tokenizer run learns, chosen once from its settings' ``task``.

``Reconstruction`` (no ``task``: a VQ-VAE) rebuilds its input images; ``Classification``
(``task: classification``: a classifier with a VQ bottleneck, "Straightening Out the
STE" Tables 1, 2, 10) predicts the images' labels. The training loop (vqrepro/train.py)
takes its batches, targets and task loss from the task, and the name of that loss in
train_log.csv; the rest of the loop is the same for both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from .data import ImageSplit, iterate_batches
from .training_settings import TrainingSettings

# Images in [0, 1] and their labels (None for a task that needs none).
Batch = tuple[torch.Tensor, torch.Tensor | None]


def is_classifier(settings: dict) -> bool:
    return settings.get("task", "reconstruction") == "classification"


class Reconstruction:
    """The targets are the input images; the loss is their MSE, over the data variance if the schedule asks."""

    log_name = "recon"  # the task loss's column in train_log.csv
    measures_mse = True  # convergence.csv's mse column
    num_classes = 0  # what ckpt.pt records for an autoencoder

    def __init__(self, variance: float):
        self.variance = variance

    def batches(self, split: ImageSplit, batch_size: int, seed: int, start: int, stop: int,
                workers: int) -> Iterator[Batch]:
        for images in iterate_batches(split, batch_size, seed, start, stop, workers):
            yield images, None

    def targets(self, images: torch.Tensor, labels: None) -> torch.Tensor:
        return images

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target) / self.variance


class Classification:
    """The targets are the batch's labels; the loss is the cross-entropy of the logits."""

    log_name = "xent"
    measures_mse = False

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def batches(self, split: ImageSplit, batch_size: int, seed: int, start: int, stop: int,
                workers: int) -> Iterator[Batch]:
        return iterate_batches(split, batch_size, seed, start, stop, workers, with_labels=True)

    def targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(images.device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)


def task_for(settings: dict, schedule: TrainingSettings, train_split: ImageSplit,
             data_dir: str | Path) -> Reconstruction | Classification:
    """The run's task, sized from its training split (the number of classes, the pixel variance)."""
    if is_classifier(settings):
        if train_split.labels is None:
            raise ValueError(f"{data_dir} has no labels; a classification study needs a labelled data set")
        return Classification(int(train_split.labels.max()) + 1)
    # 4 x the variance of [0, 1] pixels: that of the same pixels in [-1, 1]
    return Reconstruction(4.0 * train_split.pixel_variance() if schedule.divide_by_data_variance else 1.0)
