"""Rendered detection scenes: several objects of three classes, small to large, over clutter,
partly hiding each other; deterministic by seed, cached by a hash of what determines them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

import mqat

from .. import cachefile

CLASSES = ("square", "disc", "triangle")
RENDERER_VERSION = 1
MIN_VISIBLE = 0.4  # an object less visible than this is left out of the scene altogether


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a rendered set; its hash names the cache file."""

    count: int
    seed: int
    size: int = 96
    max_objects: int = 6
    min_size: float = 6.0
    max_size: float = 56.0
    clutter: int = 6

    def key(self) -> str:
        return cachefile.spec_key(self, RENDERER_VERSION)


@dataclass
class Scenes:
    """``images`` (N, 3, S, S) uint8; ``boxes`` (N, M, 4) x1 y1 x2 y2 in pixels and ``labels``
    (N, M), padded with label -1 where an image has fewer than M objects."""

    images: Tensor
    boxes: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def objects(self, index: int) -> tuple[Tensor, Tensor]:
        keep = self.labels[index] >= 0
        return self.boxes[index][keep], self.labels[index][keep]


def _mask(kind: int, box: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    x1, y1, x2, y2 = box.tolist()
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if kind == 0:    # square
        return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    if kind == 1:    # disc
        return (xs - cx) ** 2 + (ys - cy) ** 2 < half ** 2
    # triangle, apex up: the width grows linearly from the top edge to the bottom one
    return (ys >= y1) & (ys < y2) & ((xs - cx).abs() <= (ys - y1) / max(y2 - y1, 1e-6) * half)


def _clutter(image: Tensor, count: int, g: torch.Generator, ys: Tensor, xs: Tensor) -> None:
    """Thin strokes in random colours: edges a detector must learn to ignore."""
    size = image.shape[-1]
    for _ in range(count):
        x0, y0 = (torch.rand(2, generator=g) * size).tolist()
        angle = float(torch.rand(1, generator=g)) * math.pi
        length = size * (0.2 + 0.5 * float(torch.rand(1, generator=g)))
        dx, dy = math.cos(angle), math.sin(angle)
        along = (xs - x0) * dx + (ys - y0) * dy
        across = (-(xs - x0) * dy + (ys - y0) * dx).abs()
        stroke = (across < 0.8) & (along > 0) & (along < length)
        image[:, stroke] = torch.rand(3, 1, generator=g)


def render_scene(spec: SceneSpec, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One image in [0, 1] and its boxes and labels (objects hidden beyond MIN_VISIBLE left out)."""
    size = spec.size
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    count = int(torch.randint(1, spec.max_objects + 1, (1,), generator=g))
    sides = torch.exp(math.log(spec.min_size) + torch.rand(count, generator=g)
                      * (math.log(spec.max_size) - math.log(spec.min_size)))
    centres = torch.rand(count, 2, generator=g) * size
    boxes = torch.cat([centres - sides[:, None] / 2, centres + sides[:, None] / 2], 1).clamp(0, size)
    labels = torch.randint(len(CLASSES), (count,), generator=g)
    colours = 0.35 + 0.65 * torch.rand(count, 3, generator=g)
    masks = [_mask(int(c), b, ys, xs) for c, b in zip(labels, boxes)]
    # what stays visible once later objects are drawn over earlier ones
    visible = []
    for i, mask in enumerate(masks):
        covered = torch.zeros_like(mask)
        for later in masks[i + 1:]:
            covered |= later
        area = int(mask.sum())
        visible.append(area > 0 and int((mask & ~covered).sum()) >= MIN_VISIBLE * area)
    keep = torch.tensor(visible, dtype=torch.bool)
    background = 0.3 * torch.rand(3, 1, 1, generator=g)
    ramp = (xs / size * float(torch.rand(1, generator=g)) * 0.2)[None]
    image = background + ramp + 0.04 * torch.randn(3, size, size, generator=g)
    _clutter(image, spec.clutter, g, ys, xs)
    for i in torch.nonzero(keep).flatten().tolist():
        image[:, masks[i]] = colours[i][:, None]
    # boxes tight around what was drawn of each kept object (a shape clipped at the border)
    tight = []
    for i in torch.nonzero(keep).flatten().tolist():
        rows, cols = torch.nonzero(masks[i], as_tuple=True)
        tight.append(torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32))
    out_boxes = torch.stack(tight) if tight else torch.zeros(0, 4)
    return image.clamp(0, 1), out_boxes, labels[keep]


def render_scenes(spec: SceneSpec, *, progress: bool = True, desc: str = "rendering") -> Scenes:
    from tqdm import tqdm

    images = torch.zeros(spec.count, 3, spec.size, spec.size, dtype=torch.uint8)
    boxes = torch.zeros(spec.count, spec.max_objects, 4)
    labels = torch.full((spec.count, spec.max_objects), -1, dtype=torch.long)
    g = torch.Generator().manual_seed(spec.seed * 1_000_003 + 17)
    for i in tqdm(range(spec.count), desc=desc, unit="img", disable=not progress, leave=False):
        image, b, c = render_scene(spec, g)
        images[i] = (image * 255).round().to(torch.uint8)
        boxes[i, :len(b)], labels[i, :len(c)] = b, c
    return Scenes(images, boxes, labels)


def cached_scenes(spec: SceneSpec, cache_dir: str | Path, *, progress: bool = True, desc: str = "rendering") -> Scenes:
    """The rendered set for ``spec``, from ``cache_dir`` if it was rendered before."""
    path = Path(cache_dir) / "scenes" / f"{spec.key()}.pt"
    return cachefile.rendered(path, lambda: render_scenes(spec, progress=progress, desc=desc),
                              save=lambda scenes, to: mqat.atomic_write(to, lambda f: torch.save(asdict(scenes), f)),
                              load=lambda at: Scenes(**torch.load(at, weights_only=True)))
