"""Keypoint heatmaps: Gaussian targets, CenterNet focal loss, offsets, and decoding.

A keypoint at pixel (u, v) (pixel centres at i + 0.5) falls in heatmap cell
``(round(u / 4 - 0.5), round(v / 4 - 0.5))``; the offset head predicts the remainder in cells.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .network import STRIDE


def targets(keypoints: Tensor, grid: int, sigma: float = 1.0):
    """Heatmap targets (B, K, G, G), peak cells (B, K) as flat indices, offsets (B, K, 2), valid mask."""
    cells = keypoints / STRIDE - 0.5                     # continuous cell coordinates (B, K, 2)
    peak = cells.round()
    valid = ((peak >= 0) & (peak < grid)).all(-1)
    peak = peak.clamp(0, grid - 1)
    offset = cells - peak
    axis = torch.arange(grid, dtype=keypoints.dtype, device=keypoints.device)
    gx = torch.exp(-((axis - peak[..., :1]) ** 2) / (2 * sigma**2))   # (B, K, G)
    gy = torch.exp(-((axis - peak[..., 1:]) ** 2) / (2 * sigma**2))
    heat = gy.unsqueeze(-1) * gx.unsqueeze(-2) * valid[..., None, None]
    index = (peak[..., 1] * grid + peak[..., 0]).long()
    return heat, index, offset, valid


def focal_loss(logits: Tensor, heat: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -torch.log(prob) * (1 - prob) ** alpha * pos
    neg_loss = -torch.log(1 - prob) * prob**alpha * (1 - heat) ** beta * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def offset_loss(offsets: Tensor, index: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """L1 loss of the predicted (dx, dy) at each keypoint's peak cell."""
    b, k2, g, _ = offsets.shape
    pred = offsets.reshape(b, k2 // 2, 2, g * g)
    pred = pred.gather(3, index[:, :, None, None].expand(-1, -1, 2, 1)).squeeze(-1)   # (B, K, 2)
    err = (pred - target).abs().sum(-1) * valid
    return err.sum() / valid.sum().clamp(min=1)


def pose_loss(outputs: tuple[Tensor, Tensor], keypoints: Tensor, offset_weight: float = 1.0) -> Tensor:
    logits, offsets = outputs
    heat, index, offset, valid = targets(keypoints, logits.shape[-1])
    return focal_loss(logits, heat) + offset_weight * offset_loss(offsets, index, offset, valid)


def decode(logits: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Keypoints (B, K, 2) in pixels and their scores (B, K) from the strongest cell of each map."""
    b, k, g, _ = logits.shape
    score, index = logits.reshape(b, k, g * g).max(-1)
    off = offsets.reshape(b, k, 2, g * g).gather(3, index[:, :, None, None].expand(-1, -1, 2, 1)).squeeze(-1)
    cells = torch.stack([index % g, index // g], dim=-1).to(off.dtype) + off
    return (cells + 0.5) * STRIDE, torch.sigmoid(score)

