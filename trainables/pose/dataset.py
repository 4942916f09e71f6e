"""Pose datasets: images with intrinsics and ground-truth poses, rendered once and cached."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

import mqat

from .. import cachefile
from .camera import intrinsics, random_rotations, span_to_depth
from .render import render
from .satellite import satellite

#: Bump when the renderer's output changes, so old caches are not reused.
RENDERER_VERSION = 3  # 3: rendered in float64, the same bytes on every CPU
BIN_NAMES = ("near", "medium", "far")


@dataclass
class PoseData:
    """``N`` images (uint8, N x 3 x S x S) with per-image ``K``, ``R``, ``t`` and depth bin."""

    images: Tensor
    K: Tensor
    R: Tensor
    t: Tensor
    bins: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def subset(self, index) -> PoseData:
        return PoseData(self.images[index], self.K[index], self.R[index], self.t[index], self.bins[index])

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file renamed), so a crash leaves no partial cache."""
        mqat.atomic_write(path, lambda f: torch.save(asdict(self), f))

    @classmethod
    def load(cls, path: Path) -> PoseData:
        # mmap: trials on one machine share the page cache instead of copying the images.
        return cls(**torch.load(path, weights_only=True, mmap=True))


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines a rendered set; its hash names the cache file."""

    count: int
    seed: int
    size: int = 128
    occlusion: float = 0.3
    #: image-width fractions the object's diameter spans, per depth bin (near, medium, far)
    spans: tuple[tuple[float, float], ...] = ((0.55, 0.70), (0.42, 0.55), (0.32, 0.42))
    #: how far (fraction of the width) the object's centre may project from the image centre
    centre_jitter: float = 0.12

    def key(self) -> str:
        return cachefile.spec_key(self, RENDERER_VERSION)


def sample_poses(spec: RenderSpec, count: int, generator: torch.Generator, diameter: float):
    """Uniform rotations; depths uniform within a random bin; centres jittered on the image."""
    focal = float(spec.size)
    R = random_rotations(count, generator, dtype=torch.float64)
    bins = torch.randint(0, len(spec.spans), (count,), generator=generator)
    lo = torch.tensor([span_to_depth(s[1], focal=focal, size=spec.size, diameter=diameter)
                       for s in spec.spans], dtype=torch.float64)
    hi = torch.tensor([span_to_depth(s[0], focal=focal, size=spec.size, diameter=diameter)
                       for s in spec.spans], dtype=torch.float64)
    z = lo[bins] + (hi[bins] - lo[bins]) * torch.rand(count, generator=generator, dtype=torch.float64)
    uv = (torch.rand(count, 2, generator=generator, dtype=torch.float64) * 2 - 1) * spec.centre_jitter * spec.size
    xy = uv * z.unsqueeze(1) / focal
    return R, torch.cat([xy, z.unsqueeze(1)], dim=1), bins


def render_dataset(spec: RenderSpec, *, chunk: int = 128, progress: bool = True,
                   desc: str = "rendering") -> PoseData:
    """Render ``spec.count`` images, chunk by chunk; the same bytes for a given spec on every CPU
    (poses and images are computed in float64, see ``render``; stored as uint8 and float32)."""
    from tqdm import tqdm

    diameter = satellite().diameter
    K = intrinsics(float(spec.size), spec.size)
    parts = []
    with tqdm(total=spec.count, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, spec.count, chunk):
            n = min(chunk, spec.count - start)
            g = torch.Generator().manual_seed(spec.seed * 1_000_003 + start)
            R, t, bins = sample_poses(spec, n, g, diameter)
            images = render(R, t, K, spec.size, generator=g, occlusion=spec.occlusion)
            parts.append(((images * 255).round().to(torch.uint8), R.float(), t.float(), bins))
            bar.update(n)
    images, R, t, bins = (torch.cat(p) for p in zip(*parts))
    return PoseData(images, K.expand(spec.count, 3, 3).clone(), R, t, bins)


def cached_render(spec: RenderSpec, cache_dir: Path, *, progress: bool = True,
                  desc: str = "rendering") -> PoseData:
    """The rendered set for ``spec``, from ``cache_dir`` if it was rendered before."""
    path = Path(cache_dir) / "rendered" / f"{spec.key()}.pt"
    return cachefile.rendered(path, lambda: render_dataset(spec, progress=progress, desc=desc),
                              save=PoseData.save, load=PoseData.load)
