"""MOASHA's decision rule, kept for the replay (``bench.replay``) alone.

MOASHA early stopping (``search.scheduler: {name: moasha}``) was retired from the search: on the
replay of the recorded table every sampler ended below the same sampler without it at equal
compute (docs/benchmarks.md). This is the retired scheduler's decision rule, unchanged, so that
the replay's "+ moasha" arms reproduce the measurement that retired it.

A trial's result at a stage is ranked against every result recorded at that stage before it, by
non-dominated sorting on its objectives (all maximised: the replay passes accuracy so far and the
plan's compression), then by crowding distance within a front (NSGA-II's, larger is better: the
ends of a front are kept). It goes on when it ranks in the top ``1 / eta``, and is stopped
otherwise (Schmucker et al., "Multi-objective asynchronous successive halving", 2021). Until a
stage has more than ``eta`` records, every trial passes it: one or two records say nothing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """The front index of each point (0: not dominated; 1: dominated only by front 0; ...);
    all objectives maximised. Two objectives take a sweep, O(n log n) (peeling fronts off one
    Pareto mask at a time made the scheduler the driver's bottleneck at 1,000 trials); more, a
    dominance matrix and counts, O(n^2) for all fronts."""
    if points.shape[1] == 2:
        return _ranks_2d(points)
    n = len(points)
    ge = (points[None, :, :] >= points[:, None, :]).all(-1)
    gt = (points[None, :, :] > points[:, None, :]).any(-1)
    dominates = ge & gt                                  # dominates[i, j]: j dominates i
    dominators = dominates.sum(axis=1)
    ranks = np.full(n, -1)
    front, current = 0, np.flatnonzero(dominators == 0)
    while len(current):
        ranks[current] = front
        dominators -= dominates[:, current].sum(axis=1)
        dominators[current] = -1                         # placed: never picked again
        front, current = front + 1, np.flatnonzero(dominators == 0)
    return ranks


def _ranks_2d(points: np.ndarray) -> np.ndarray:
    """Two-objective non-dominated sorting by one sweep: in order of falling x (then y), a point
    joins the first front none of whose members dominates it. A front's members seen so far have
    x >= the point's, and the last one added has the largest y, so it alone decides; and whether a
    front dominates the point only turns from yes to no along the fronts: a binary search."""
    ranks = np.full(len(points), -1)
    last: list[tuple[float, float]] = []  # (x, y) of the last point each front took
    for i in sorted(range(len(points)), key=lambda k: (-points[k, 0], -points[k, 1])):
        x, y = points[i]
        low, high = 0, len(last)
        while low < high:
            middle = (low + high) // 2
            qx, qy = last[middle]
            if qy > y or (qy == y and qx > x):  # dominated by that front
                low = middle + 1
            else:
                high = middle
        if low == len(last):
            last.append((x, y))
        else:
            last[low] = (x, y)
        ranks[i] = low
    return ranks


def crowding(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within one front: the ends of each objective are infinite."""
    n, distance = len(points), np.zeros(len(points))
    if n <= 2:
        return np.full(n, np.inf)
    for column in points.T:
        order = np.argsort(column)
        span = column[order[-1]] - column[order[0]]
        distance[order[[0, -1]]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def promoted(records: Mapping[str, Sequence[float]], trial_id: str, eta: int) -> bool:
    """Whether ``trial_id`` ranks in the top ``ceil(n / eta)`` of a stage's ``n`` records (points to
    maximise), by non-dominated rank, then crowding distance; always while ``n <= eta``."""
    if len(records) <= eta:
        return True
    ids = list(records)
    points = np.array([records[i] for i in ids], dtype=float)
    ranks = nondominated_ranks(points)
    spread = np.zeros(len(ids))
    for front in np.unique(ranks):
        members = ranks == front
        spread[members] = crowding(points[members])
    order = sorted(range(len(ids)), key=lambda i: (ranks[i], -spread[i], ids[i]))
    return ids.index(trial_id) in order[: math.ceil(len(ids) / eta)]


class MoashaRule:
    """The records of each stage it was asked about, and its decisions: keep the top ``1 / eta``.
    Which stages are judged is the caller's choice: the rule judges every one it is asked about."""

    def __init__(self, eta: int = 2):
        if eta < 2:
            raise ValueError(f"MOASHA needs eta >= 2, but got {eta}")
        self.eta = int(eta)
        self.records: dict[int, dict[str, tuple[float, ...]]] = {}

    def promotes(self, trial_id: str, stage: int, *values: float) -> bool:
        """Record a trial's result at ``stage`` (its objectives, all maximised) and say whether it
        goes on; a stage run again overwrites its record."""
        records = self.records.setdefault(stage, {})
        records[trial_id] = tuple(float(v) for v in values)
        return promoted(records, trial_id, self.eta)
