"""A small image classifier trained by the pipeline itself, for an offline feature space.

Its penultimate features give a Fréchet distance and precision/recall between
generated and real images that need no downloaded weights. It is named for what it
is ("Fréchet distance in <dataset>-classifier features"), never FID: Inception's
numbers and these are not comparable.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import runtime
from .data import batch_indices, load_split
from .io import load_tensors, save_tensors, write_json
from .runs import CLASSIFIER_METRICS


class SmallCNN(nn.Module):
    def __init__(self, channels: int, side: int, classes: int, width: int, features: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * ((side + 1) // 2) ** 2, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def features(self, x01: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(x01 * 2.0 - 1.0))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x01))


def train_classifier(settings: dict, data_dir: str | Path, out: str | Path, threads: int = 1, device: str = "auto") -> dict:
    began = time.time()
    dev = runtime.configure(threads, settings["seed"], device)
    train, test = load_split(data_dir, "train"), load_split(data_dir, "test")
    if train.labels is None:
        raise ValueError(f"the feature classifier needs a labelled data set; {data_dir} has no labels")
    channels, side, _ = train.shape
    classes = int(train.labels.max()) + 1
    model = SmallCNN(channels, side, classes, settings["width"], settings["features"]).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    model.train()
    for step in range(settings["steps"]):
        idx = batch_indices(len(train), settings["batch_size"], settings["seed"], step)
        loss = F.cross_entropy(model(train.batch(idx).to(dev)), train.labels[idx].to(dev))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = model(test.batch(torch.arange(len(test))).to(dev)).argmax(1).cpu()
    accuracy = float((predictions == test.labels).float().mean())
    save_tensors(out, {"model": model.state_dict(), "channels": channels, "side": side, "classes": classes,
                       "settings": json.dumps(settings, sort_keys=True), "test_accuracy": accuracy})
    report = {"test_accuracy": accuracy, "provenance": runtime.provenance(settings, dev, time.time() - began)}
    write_json(Path(out).with_name(CLASSIFIER_METRICS), report)
    return report


def load_classifier(path: str | Path, device: torch.device) -> SmallCNN:
    content = load_tensors(path)
    settings = json.loads(content["settings"])
    model = SmallCNN(content["channels"], content["side"], content["classes"], settings["width"], settings["features"])
    model.load_state_dict(content["model"])
    return model.to(device).eval()
