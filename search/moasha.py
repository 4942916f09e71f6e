"""MOASHA: Pareto-aware asynchronous successive halving over a trial's MQAT stages.

A trial reports after every stage. At a rung (a stage index, ``search.scheduler.rungs``) it is
ranked against every trial that reached that rung before it, by non-dominated sorting on the
search's objectives that a stage reports (``Objective.stage_key``): its accuracy so far, and its
plan's final compression (known before it trains, reported as ``plan_compression``); within a
front, by crowding distance (NSGA-II's, larger is
better: the ends of a front are kept). It goes on when it ranks in the top ``1 / eta``, and is
stopped otherwise (Schmucker et al., "Multi-objective asynchronous successive halving", 2021).
Until a rung has more than ``eta`` records, every trial passes it: one or two records say nothing.

The rungs' records are written to ``scheduler.json`` in the search's directory after every
decision, and read back by a resumed driver (Tune keeps no scheduler state of its own).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ray.tune import Callback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from mqat import atomic_write
from tracking.artifacts import SCHEDULER_FILE as STATE_FILE


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """The front index of each point (0: not dominated; 1: dominated only by front 0; ...);
    all objectives maximised. Peeling fronts off with a Pareto mask each costs O(n^2) per front,
    and made MOASHA the driver's bottleneck at 1,000 trials: two objectives (MOASHA's) take a
    sweep, O(n log n); more, a dominance matrix and counts, O(n^2) for all fronts."""
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
    """Whether ``trial_id`` ranks in the top ``ceil(n / eta)`` of a rung's ``n`` records (points to
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


#: what MOASHA ranks by unless told: (a stage report's key, its mode) for accuracy and compression
RANKED = (("accuracy", "max"), ("plan_compression", "max"))


class MOASHA(FIFOScheduler):
    """The MOASHA scheduler of ``search.scheduler: moasha`` (see the module's docstring).
    ``metrics``: the stage reports' keys it ranks by, with their modes."""

    def __init__(self, rungs: Sequence[int] = (0, 1), eta: int = 2, state_dir: str | Path | None = None,
                 metrics: Sequence[tuple[str, str]] = RANKED):
        super().__init__()
        if eta < 2 or not rungs or min(rungs) < 0:
            raise ValueError(f"MOASHA needs eta >= 2 and stage rungs >= 0, but got eta {eta} and rungs {list(rungs)}")
        self.rungs, self.eta = tuple(sorted(set(rungs))), int(eta)
        self.metrics = tuple((key, mode) for key, mode in metrics)
        self.state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self.records: dict[int, dict[str, tuple[float, ...]]] | None = None  # read on first use
        self.decisions, self.decision_seconds, self.stopped = 0, 0.0, 0

    def _records(self) -> dict[int, dict[str, tuple[float, ...]]]:
        if self.records is None:
            self.records = {rung: {} for rung in self.rungs}
            if self.state_path is not None and self.state_path.is_file():  # a resumed driver
                saved = json.loads(self.state_path.read_text())
                for rung, records in saved["records"].items():
                    self.records.setdefault(int(rung), {}).update({k: tuple(v) for k, v in records.items()})
        return self.records

    def _save(self) -> None:
        if self.state_path is not None:
            state = {"rungs": list(self.rungs), "eta": self.eta,
                     "records": {str(rung): records for rung, records in self._records().items()}}
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.state_path, lambda f: f.write(json.dumps(state).encode()))

    def decide(self, trial_id: str, stage: int, *values: float) -> str:
        """Record a trial's result at a rung (its ``metrics``' values, in order) and return
        CONTINUE or STOP."""
        start = time.perf_counter()
        records = self._records().setdefault(stage, {})
        signs = [1.0 if mode == "max" else -1.0 for _, mode in self.metrics]
        records[trial_id] = tuple(sign * float(v) for sign, v in zip(signs, values, strict=True))  # a re-run stage overwrites
        keep = promoted(records, trial_id, self.eta)
        self._save()
        self.decisions += 1
        self.stopped += not keep
        self.decision_seconds += time.perf_counter() - start
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        stage = result.get("stage")
        values = [result.get(key) for key, _ in self.metrics]
        if result.get("final") or stage not in self.rungs or None in values:
            return TrialScheduler.CONTINUE
        return self.decide(trial.trial_id, int(stage), *values)

    def debug_string(self) -> str:
        return (f"MOASHA: rungs at stages {list(self.rungs)}, eta {self.eta}; "
                f"{self.stopped} of {self.decisions} decisions stopped a trial")


class StoppedMarker(Callback):
    """Marks the last report of a trial the scheduler stopped (Tune sets ``done`` on it before the
    callbacks run; a trial that ends by itself reports ``final``): ``early_stopped`` and the stage,
    and each objective a stage reports under another key is copied to its own (``compression``
    is its plan's), so that what reads the report learns the accuracy the trial reached with the
    compression its plan was to give. Runs before the other callbacks, which read the mark.
    ``renamed``: (stage key, objective key) pairs."""

    def __init__(self, renamed: Sequence[tuple[str, str]] = (("plan_compression", "compression"),)):
        self.renamed = tuple(renamed)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done") and not result.get("final") and "stage" in result:  # a stage's report
            result.update(early_stopped=True, stopped_at_stage=result.get("stage"))
            result.update({key: result[stage_key] for stage_key, key in self.renamed if stage_key in result})
