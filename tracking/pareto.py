"""Pareto front and hypervolume of (accuracy, compression) points, both maximised. Pure numpy."""
from __future__ import annotations

import numpy as np

#: Default reference point: no accuracy, no compression.
REFERENCE = (0.0, 1.0)


def pareto_mask(points) -> np.ndarray:
    """True for each point that no other point dominates (>= in every objective, > in one).

    Duplicated points do not dominate each other, so all copies of a front point are kept.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    ge = (pts[None, :, :] >= pts[:, None, :]).all(-1)   # ge[i, j]: j at least as good as i
    gt = (pts[None, :, :] > pts[:, None, :]).any(-1)    # gt[i, j]: j better than i somewhere
    return ~(ge & gt).any(axis=1)


def hypervolume(points, reference=REFERENCE) -> float:
    """Area dominated by ``points`` and bounded below by ``reference`` (2 objectives, maximised).

    Points that do not improve on the reference in both objectives add nothing.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    ref = np.asarray(reference, dtype=float)
    pts = pts[(pts > ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    front = np.unique(pts[pareto_mask(pts)], axis=0)
    front = front[np.argsort(-front[:, 0])]               # accuracy falling, compression rising
    area, last_y = 0.0, ref[1]
    for x, y in front:
        area += (x - ref[0]) * (y - last_y)
        last_y = y
    return float(area)
