"""Pose metrics: ADD and ADD-S at 0.1 d, per depth bin, errors, and the ADD AUC companion."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .camera import rotation_error_deg
from .dataset import BIN_NAMES


def add_error(points: Tensor, R_pred: Tensor, t_pred: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """ADD: mean distance between model points under the predicted and the true pose (per image)."""
    pred = points @ R_pred.transpose(1, 2) + t_pred[:, None]
    true = points @ R.transpose(1, 2) + t[:, None]
    return (pred - true).norm(dim=-1).mean(-1)


def adds_error(points: Tensor, R_pred: Tensor, t_pred: Tensor, R: Tensor, t: Tensor,
               chunk: int = 64) -> Tensor:
    """ADD-S (ADI): mean distance from each predicted point to the closest true point."""
    out = []
    for i in range(0, R.shape[0], chunk):
        s = slice(i, i + chunk)
        pred = points @ R_pred[s].transpose(1, 2) + t_pred[s, None]
        true = points @ R[s].transpose(1, 2) + t[s, None]
        out.append(torch.cdist(pred, true).min(-1).values.mean(-1))
    return torch.cat(out)


def pose_metrics(points: Tensor, diameter: float, R_pred: Tensor, t_pred: Tensor, R: Tensor,
                 t: Tensor, bins: Tensor) -> dict[str, float]:
    """ADD-0.1d (``accuracy``) with its standard error, per bin, ADD-S, AUC and pose errors.

    ``add_auc`` is the area under the ADD accuracy curve for thresholds up to 0.1 d, i.e. the
    mean of ``max(0, 1 - ADD / 0.1 d)``: it moves with small improvements that ADD-0.1d, a
    threshold count, only registers when a pose crosses the line.
    """
    threshold = 0.1 * diameter
    add = add_error(points, R_pred, t_pred, R, t)
    adds = adds_error(points[:300], R_pred, t_pred, R, t)
    correct = (add < threshold).float()
    n = correct.numel()
    p = float(correct.mean())
    out = {
        "accuracy": p,
        "add_01d": p,
        "add_01d_se": math.sqrt(max(p * (1 - p), 1e-12) / n),
        "accuracy_se": math.sqrt(max(p * (1 - p), 1e-12) / n),  # the generic name of the above
        "adds_01d": float((adds < threshold).float().mean()),
        "add_auc": float((1 - add / threshold).clamp(min=0).mean()),
        "rot_err_deg_median": float(rotation_error_deg(R_pred, R).median()),
        "trans_err_cm_median": float((t_pred - t).norm(dim=-1).median() * 100),
        "images": float(n),
    }
    for index, name in enumerate(BIN_NAMES):
        mask = bins == index
        if mask.any():
            out[f"add_01d_{name}"] = float(correct[mask].mean())
    return out


def mean_pose(R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The mean pose of a set: chordal mean rotation (projected by SVD) and mean translation."""
    U, _, Vh = torch.linalg.svd(R.mean(0))
    mean_R = U @ Vh
    if torch.det(mean_R) < 0:
        U[:, -1] = -U[:, -1]
        mean_R = U @ Vh
    return mean_R, t.mean(0)
