"""Pareto front and hypervolume of points whose objectives are all maximised. Pure numpy.

Two objectives (accuracy, compression) by default; any number work (latency, minimised, enters
negated: see ``tracking.objectives``).
"""
from __future__ import annotations

import numpy as np

#: Default reference point: no accuracy, no compression.
REFERENCE = (0.0, 1.0)


def _as_points(points, dims: int | None = None) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return np.zeros((0, dims or 2))
    return pts.reshape(len(pts), -1)


def pareto_mask(points) -> np.ndarray:
    """True for each point that no other point dominates (>= in every objective, > in one).

    Duplicated points do not dominate each other, so all copies of a front point are kept.
    """
    pts = _as_points(points)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    ge = np.all(pts[None, :, :] >= pts[:, None, :], axis=-1)   # ge[i, j]: j at least as good as i
    gt = np.any(pts[None, :, :] > pts[:, None, :], axis=-1)    # gt[i, j]: j better than i somewhere
    return ~np.any(ge & gt, axis=1)


def _volume(front: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``front`` (all above ``ref``) by slicing along the last objective:
    between consecutive values of it, the (d-1)-dimensional volume of the points that reach it."""
    if front.shape[1] == 1:
        return float(front[:, 0].max() - ref[0])
    levels = np.unique(front[:, -1])[::-1]                 # highest first
    volume, below = 0.0, np.append(levels[1:], ref[-1])
    for level, lower in zip(levels, below):
        reach = front[front[:, -1] >= level, :-1]
        reach = reach[pareto_mask(reach)]
        volume += _volume(reach, ref[:-1]) * (level - lower)
    return volume


def hypervolume(points, reference=REFERENCE) -> float:
    """Volume dominated by ``points`` and bounded below by ``reference`` (all maximised); an area
    for two objectives.

    Points that do not improve on the reference in every objective add nothing.
    """
    ref = np.asarray(reference, dtype=float)
    pts = _as_points(points, len(ref))
    pts = pts[(pts > ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    front = np.unique(pts[pareto_mask(pts)], axis=0)
    if front.shape[1] == 2:   # the common case, in one sweep
        front = front[np.argsort(-front[:, 0])]            # accuracy falling, compression rising
        area, last_y = 0.0, ref[1]
        for x, y in front:
            area += (x - ref[0]) * (y - last_y)
            last_y = y
        return float(area)
    return _volume(front, ref)
