"""A complete task of your own for ``mqat search``: a three-module classifier of drawn shapes.

It is written on the short task contract (README, "Search your own network"; the base class
and what it provides are in ``trainables/base.py``): a config, the module map, the network, the
data per split, the loss and the score. Name it in a config as ``task: {name: "shapes_task:ShapesTask"}``
with this file beside the config (or anywhere on ``PYTHONPATH``); the search ships it to the
workers of a cluster.

The data: 32x32 colour images of one of six shapes (square, disc, bar, ring, cross, triangle)
at a random place, size and colour, on a noisy background; drawn from a seed per split, so
train, val and test are disjoint and the same on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from trainables.base import BaseTask, Metric

SHAPES = ("square", "disc", "bar", "ring", "cross", "triangle")
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class ShapesConfig:
    """The keys of the config's ``task:`` section (``name`` aside); checked before Ray starts."""

    train_images: int = 4000
    val_images: int = 1000
    test_images: int = 1000
    width: int = 16
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("train_images", "val_images", "test_images", "width", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"task.{key} must be >= 1, but got {getattr(self, key)!r}")


def draw_shapes(count: int, seed: int, size: int = 32) -> tuple[Tensor, Tensor]:
    """``count`` images (N, 3, size, size) and their labels, from ``seed`` alone: a shape of a
    random size, place and colour on a darker, noisy background."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(SHAPES), (count,), generator=g)
    radius = size * (0.08 + 0.14 * torch.rand(count, 1, 1, generator=g))
    centre = size * (0.25 + 0.5 * torch.rand(count, 2, 1, 1, generator=g))
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dy, dx = ys - centre[:, 0], xs - centre[:, 1]
    distance = (dy ** 2 + dx ** 2).sqrt()
    masks = torch.stack([
        (dy.abs() < radius) & (dx.abs() < radius),                                     # square
        distance < radius,                                                             # disc
        (dy.abs() < radius / 3) & (dx.abs() < radius * 1.4),                           # bar
        (distance < radius) & (distance > radius * 0.6),                               # ring
        ((dy.abs() < radius / 3) | (dx.abs() < radius / 3)) & (distance < radius * 1.2),  # cross
        (dy < radius) & (dy > -radius) & (dx.abs() < (dy + radius) / 2),               # triangle
    ], dim=1)[torch.arange(count), labels]
    background, colour = 0.5 * torch.rand(2, count, 3, 1, 1, generator=g)
    images = torch.where(masks[:, None], 0.5 + colour, background)   # the shape the brighter
    return images + 0.2 * torch.randn(count, 3, size, size, generator=g), labels


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ShapesNet(nn.Module):
    """backbone (two strided conv blocks) > neck (a conv block) > head (pool and a linear layer)."""

    def __init__(self, width: int):
        super().__init__()
        self.backbone = nn.Sequential(*_block(3, width, 2), *_block(width, 2 * width, 2))
        self.neck = nn.Sequential(*_block(2 * width, 2 * width, 1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, len(SHAPES)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.neck(self.backbone(x)))


class ShapesTask(BaseTask):
    """Shape classification; ``accuracy`` is top-1 on the asked split."""

    Config = ShapesConfig
    metric = Metric(name="top-1", label="top-1 accuracy", companions={"loss": "cross-entropy"})
    modules = {"backbone": ["backbone."], "neck": ["neck."], "head": ["head."]}

    def network(self) -> nn.Module:
        return ShapesNet(self.config.width)

    def dataset(self, split: str) -> TensorDataset:
        """Drawn in memory, in a second (a large data set would be cached under ``cache_dir``)."""
        count = getattr(self.config, f"{split}_images")
        return TensorDataset(*draw_shapes(count, 1000 * self.config.seed + SPLIT_SEEDS[split]))

    def augment(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        flip = torch.rand(len(images), device=images.device) < 0.5   # mirror half of them
        return torch.where(flip[:, None, None, None], images.flip(-1), images), labels

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def score(self, model: nn.Module, batches) -> dict[str, float]:
        logits, labels = map(torch.cat, zip(*[(model(x), y) for x, y in batches]))
        accuracy = float((logits.argmax(1) == labels).float().mean())
        return {"accuracy": accuracy, "accuracy_se": math.sqrt(accuracy * (1 - accuracy) / len(labels)),
                "loss": float(F.cross_entropy(logits, labels)), "images": float(len(labels))}

    def baseline(self) -> dict[str, float]:
        """Chance: a model that always answers the commonest shape of the validation split."""
        labels = self.data("val").tensors[1]
        return {"accuracy": float(labels.bincount().max()) / len(labels)}
