"""Training augmentation: an exact camera roll, and photometric jitter.

Rotating the image about the principal point by an angle is exactly what a camera rolled
about its optical axis would see (square pixels, principal point at the centre): keypoints
rotate with it, and the pose becomes ``R_roll @ R, R_roll @ t``. Pixels rotated in from
outside the image are filled by reflection.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def roll(images: Tensor, keypoints: Tensor, angles: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate images (B, C, S, S) and their keypoints (B, K, 2) by ``angles`` about the centre.

    Positive angles turn x towards y (the image's clockwise on screen), as ``roll_matrix`` does.
    """
    size = images.shape[-1]
    c, s = torch.cos(angles), torch.sin(angles)
    # affine_grid maps output to input coordinates: the inverse rotation
    theta = torch.stack([torch.stack([c, s, torch.zeros_like(c)], -1),
                         torch.stack([-s, c, torch.zeros_like(c)], -1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    rotated = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    centre = size / 2
    rel = keypoints - centre
    rot = torch.stack([c[:, None] * rel[..., 0] - s[:, None] * rel[..., 1],
                       s[:, None] * rel[..., 0] + c[:, None] * rel[..., 1]], -1)
    return rotated, rot + centre


def jitter(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random brightness, contrast and colour balance, per image."""
    b = images.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(images.device)
    brightness = 0.75 + 0.5 * rand(b, 1, 1, 1)
    colour = 0.9 + 0.2 * rand(b, 3, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.8 + 0.4 * rand(b, 1, 1, 1)
    return ((images - mean) * contrast + mean) * brightness * colour


def random_angles(count: int, generator: torch.Generator | None = None) -> Tensor:
    return (torch.rand(count, generator=generator) * 2 - 1) * math.pi
