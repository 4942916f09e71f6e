"""Pinhole camera helpers: intrinsics, projection, random poses, and the exact camera roll."""
from __future__ import annotations

import torch
from torch import Tensor


def intrinsics(focal: float, size: int) -> Tensor:
    """``K`` with square pixels and the principal point at the image centre."""
    return torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])


def project(points: Tensor, R: Tensor, t: Tensor, K: Tensor) -> Tensor:
    """Pixel coordinates (..., N, 2) of object points (N, 3) under poses R (..., 3, 3), t (..., 3)."""
    cam = points @ R.transpose(-1, -2) + t.unsqueeze(-2)
    uvw = cam @ K.transpose(-1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def random_rotations(count: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(count, 4, generator=generator, dtype=dtype)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(count, 3, 3)


def roll_matrix(angle: Tensor) -> Tensor:
    """Rotations (B, 3, 3) about the optical axis by ``angle`` radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)


def rotation_error_deg(R_pred: Tensor, R_true: Tensor) -> Tensor:
    """Geodesic angle between rotations, in degrees."""
    cos = ((R_pred.transpose(-1, -2) @ R_true).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def span_to_depth(span: float, *, focal: float, size: int, diameter: float) -> float:
    """Depth at which an object of ``diameter`` spans ``span`` of the image width."""
    return focal * diameter / (span * size)

