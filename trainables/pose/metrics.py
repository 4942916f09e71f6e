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


def _rate(correct: Tensor) -> tuple[float, float]:
    """The fraction of ``correct`` and its binomial standard error."""
    p = float(correct.mean())
    return p, math.sqrt(max(p * (1 - p), 1e-12) / correct.numel())


def pose_metrics(points: Tensor, diameter: float, R_pred: Tensor, t_pred: Tensor, R: Tensor,
                 t: Tensor, bins: Tensor, *, symmetric: bool = False) -> dict[str, float]:
    """ADD-0.1d and ADD-S-0.1d with standard errors, per bin, their AUCs and pose errors.

    ``accuracy`` is ADD-0.1d, or ADD-S-0.1d for a ``symmetric`` object: its poses related by a
    symmetry look alike, so ADD would count a correct estimate as wrong (the MQAT paper and
    BOP's LINEMOD protocol score symmetric objects with ADD-S). ``accuracy_is_adds`` records
    which (1.0: ADD-S), ``accuracy_se`` and ``accuracy_auc`` follow the same choice.

    ``add_auc`` is the area under the ADD accuracy curve for thresholds up to 0.1 d, i.e. the
    mean of ``max(0, 1 - ADD / 0.1 d)``: it moves with small improvements that ADD-0.1d, a
    threshold count, only registers when a pose crosses the line.
    """
    threshold = 0.1 * diameter
    errors = {"add": add_error(points, R_pred, t_pred, R, t),
              "adds": adds_error(points[:300], R_pred, t_pred, R, t)}
    out: dict[str, float] = {}
    for name, error in errors.items():
        correct = (error < threshold).float()
        out[f"{name}_01d"], out[f"{name}_01d_se"] = _rate(correct)
        out[f"{name}_auc"] = float((1 - error / threshold).clamp(min=0).mean())
        for index, bin_name in enumerate(BIN_NAMES):
            mask = bins == index
            if mask.any():
                out[f"{name}_01d_{bin_name}"] = float(correct[mask].mean())
    headline = "adds" if symmetric else "add"
    out.update({
        "accuracy": out[f"{headline}_01d"],
        "accuracy_se": out[f"{headline}_01d_se"],  # the generic names of the headline's figures
        "accuracy_auc": out[f"{headline}_auc"],
        "accuracy_is_adds": float(symmetric),
        "rot_err_deg_median": float(rotation_error_deg(R_pred, R).median()),
        "trans_err_cm_median": float((t_pred - t).norm(dim=-1).median() * 100),
        "images": float(errors["add"].numel()),
    })
    return out


def mean_pose(R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The mean pose of a set: chordal mean rotation (projected by SVD) and mean translation."""
    U, _, Vh = torch.linalg.svd(R.mean(0))
    mean_R = U @ Vh
    if torch.det(mean_R) < 0:
        U[:, -1] = -U[:, -1]
        mean_R = U @ Vh
    return mean_R, t.mean(0)
