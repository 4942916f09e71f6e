"""A complete task of your own for ``mqat search``: a three-module classifier of drawn shapes.

It uses nothing but the public task contract (README, "Search your own network"; the contract
itself is in ``trainables/tasks.py``). Name it in a config as ``task: {name: "shapes_task:ShapesTask"}``
with this file beside the config (or anywhere on ``PYTHONPATH``); the search ships it to the
workers of a cluster.

The data: 32x32 colour images of one of six shapes (square, disc, bar, ring, cross, triangle)
at a random place, size and colour, on a noisy background; drawn from a seed per split, so
train, val and test are disjoint and the same on every machine.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import mqat
from trainables.tasks import Metric

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


MODULES = {"backbone": ["backbone."], "neck": ["neck."], "head": ["head."]}


class ShapesTask:
    """Shape classification; ``accuracy`` is top-1 on the asked split."""

    Config = ShapesConfig
    metric = Metric(name="top-1", label="top-1 accuracy", companions={"loss": "cross-entropy"})

    @classmethod
    def module_names(cls, config: ShapesConfig) -> list[str]:
        return list(MODULES)

    def __init__(self, config: ShapesConfig, *, cache_dir: str, device: str = "auto", progress: bool = True):
        self.config = config
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        self.module_map = mqat.ModuleMap(MODULES)
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}

    # ---- data: drawn in memory, in a second; a large data set would be cached under cache_dir
    def prepare_data(self) -> None:
        for split in SPLIT_SEEDS:
            self._data(split)

    def _data(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in self._splits:
            count = getattr(self.config, f"{split}_images")
            images, labels = draw_shapes(count, 1000 * self.config.seed + SPLIT_SEEDS[split])
            self._splits[split] = images.to(self.device), labels.to(self.device)
        return self._splits[split]

    def _batches(self, split: str, count: int) -> list[tuple[Tensor, Tensor]]:
        images, labels = self._data(split)
        size = self.config.batch_size
        return [(images[i:i + size], labels[i:i + size]) for i in range(0, min(len(images), count * size), size)]

    # ---- the contract
    def build_model(self) -> nn.Module:
        return ShapesNet(self.config.width).to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        return {"task": "shapes", "config": asdict(self.config)}

    def steps_per_epoch(self, images: int | None = None) -> int:
        count = self.config.train_images if images is None else min(images, self.config.train_images)
        return math.ceil(count / self.config.batch_size)

    def loss_fn(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def train_epoch(self, model: nn.Module, optimizer, on_step, *, images: int | None = None) -> float:
        """One pass over (a random ``images`` of) the training split, in an order drawn from
        torch's global generator (which the search seeds); returns the mean loss."""
        x, y = self._data("train")
        order = torch.randperm(len(x))[:images].to(self.device)
        total = 0.0
        for index in order.split(self.config.batch_size):
            flip = torch.rand(len(index), device=self.device) < 0.5   # augmentation: mirror
            inputs = torch.where(flip[:, None, None, None], x[index].flip(-1), x[index])
            loss = F.cross_entropy(model(inputs), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            total += loss.item() * len(index)
        return total / len(order)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, *, images: int | None = None, split: str = "val") -> dict[str, float]:
        x, y = self._data(split)
        x, y = x[:images], y[:images]
        model.eval()
        logits = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
        accuracy = float((logits.argmax(1) == y).float().mean())
        return {"accuracy": accuracy, "accuracy_se": math.sqrt(accuracy * (1 - accuracy) / len(y)),
                "loss": float(F.cross_entropy(logits, y)), "images": float(len(y))}

    def sensitivity_batches(self, count: int) -> list[tuple[Tensor, Tensor]]:
        return self._batches("val", count)

    def train_batches(self, count: int) -> list[tuple[Tensor, Tensor]]:
        return self._batches("train", count)
