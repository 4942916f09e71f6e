"""What a search optimises: accuracy and compression (maximised), and optionally latency (minimised).

A row (``tracking.results``) holds each objective under its ``key``; the Pareto front and the
hypervolume see every objective as maximised, a minimised one negated.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Objective:
    name: str      # as a config names it (``search.objectives``)
    key: str       # the trial's reported metric and the row's column
    mode: str      # "max" or "min"
    label: str     # for plots and tables


OBJECTIVES = {
    "accuracy": Objective("accuracy", "accuracy", "max", "accuracy"),
    "compression": Objective("compression", "compression", "max", "compression"),
    "latency": Objective("latency", "latency_ms", "min", "latency (ms, batch 1, in search.latency_runtime)"),
}
DEFAULT = ("accuracy", "compression")


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ValueError: accuracy and compression first, latency optional."""
    names = tuple(names)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ValueError(f"search.objectives: unknown objective {unknown[0]!r}; known: {', '.join(OBJECTIVES)}")
    if names[:2] != DEFAULT or len(set(names)) != len(names):
        raise ValueError("search.objectives must be [accuracy, compression] or [accuracy, compression, latency], "
                         f"but got {list(names)}")
    return names


def of(names: Sequence[str]) -> list[Objective]:
    return [OBJECTIVES[n] for n in names]


def maximised(rows: Sequence[Mapping[str, Any]], names: Sequence[str] = DEFAULT) -> np.ndarray:
    """The rows' objectives as points to maximise (a minimised objective negated)."""
    objectives = of(names)
    return np.array([[r[o.key] if o.mode == "max" else -r[o.key] for o in objectives] for r in rows],
                    dtype=float).reshape(len(rows), len(objectives))


def complete(row: Mapping[str, Any], names: Sequence[str] = DEFAULT) -> bool:
    """Whether a row holds every objective (a finished trial)."""
    return all(row.get(o.key) is not None for o in of(names))


def reference(names: Sequence[str] = DEFAULT, *, latency_ms: float | None = None) -> tuple[float, ...]:
    """The hypervolume's reference point, maximised: no accuracy, no compression (1x) and, for
    latency, ``latency_ms`` (twice the FP model's, see ``search.prepare``)."""
    ref = {"accuracy": 0.0, "compression": 1.0}
    if "latency" in names:
        if latency_ms is None:
            raise ValueError("a latency objective needs a reference latency")
        ref["latency"] = -latency_ms
    return tuple(ref[n] for n in names)
