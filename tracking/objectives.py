"""What a search can optimise, as data: one :class:`Objective` entry each, in :data:`OBJECTIVES`.

A search optimises accuracy and compression (maximised), and optionally more (latency, BOPs:
minimised). Everything that handles objectives reads these entries: the config's check, the
searcher's metrics and modes, the progress lines, the table's front, the plots, the MLflow view
and the registry's tags. A row (``tracking.results``) holds each objective under its ``key``;
the Pareto front and the hypervolume see every objective as maximised, a minimised one negated.
Adding an objective is one entry here, if trials already report its ``key``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Objective:
    name: str      # as a config names it (``search.objectives``)
    key: str       # the trial's reported metric and the row's column
    mode: str      # "max" or "min"
    label: str     # an axis label
    shown: str     # how one value prints in progress lines: a format string
    #: the hypervolume's reference in the objective's own units, from the FP model's metrics
    #: (``search.prepare``): the worst value a trial may have and still add to the volume
    reference: Callable[[Mapping[str, Any]], float]
    every_report: bool = True  # every report holds ``key`` (False: only the final one)
    onnx: bool = False  # measured on the trial's ONNX export (needs ``search.deploy.onnx``), the FP model timed alike

    def show(self, value: float) -> str:
        return self.shown.format(value)


OBJECTIVES = {
    "accuracy": Objective("accuracy", "accuracy", "max", "accuracy", "{:.3f}", reference=lambda fp: 0.0),
    "compression": Objective("compression", "compression", "max", "compression (x)", "{:.2f}x", reference=lambda fp: 1.0),
    # a trial slower than twice the FP model adds nothing to the hypervolume
    "latency": Objective("latency", "latency_ms", "min", "latency, ms (batch 1, median, in search.deploy.runtime)",
                         "{:.1f} ms", reference=lambda fp: 2 * fp["latency_ms"], every_report=False, onnx=True),
    # bit operations (MACs times weight and input bits, one image): the compute a plan costs on
    # hardware with kernels for its bits; no worse than the FP model's
    "bops": Objective("bops", "bops", "min", "bit operations (BOPs, one image)", "{:.3g} BOPs",
                      reference=lambda fp: fp["bops"], every_report=False),
}
DEFAULT = ("accuracy", "compression")


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ValueError: accuracy and compression first, then any others."""
    names = tuple(names)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ValueError(f"search.objectives: unknown objective {unknown[0]!r}; known: {', '.join(OBJECTIVES)}")
    if names[:2] != DEFAULT or len(set(names)) != len(names):
        extra = ", ".join(n for n in OBJECTIVES if n not in DEFAULT)
        raise ValueError(f"search.objectives must be [accuracy, compression], then any of {extra}, "
                         f"but got {list(names)}")
    return names


def of(names: Sequence[str]) -> list[Objective]:
    return [OBJECTIVES[n] for n in names]


def extra(names: Sequence[str]) -> list[Objective]:
    """The objectives beyond accuracy and compression (drawn in plots of their own)."""
    return [OBJECTIVES[n] for n in names if n not in DEFAULT]


def metrics_and_modes(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The reported metrics a searcher optimises, and their modes."""
    chosen = of(names)
    return [o.key for o in chosen], [o.mode for o in chosen]


def on_export(names: Sequence[str]) -> bool:
    """Whether any objective is measured on the ONNX export."""
    return any(o.onnx for o in of(names))


def maximised(rows: Sequence[Mapping[str, Any]], names: Sequence[str] = DEFAULT) -> np.ndarray:
    """The rows' objectives as points to maximise (a minimised objective negated)."""
    objectives = of(names)
    return np.array([[r[o.key] if o.mode == "max" else -r[o.key] for o in objectives] for r in rows],
                    dtype=float).reshape(len(rows), len(objectives))


def complete(row: Mapping[str, Any], names: Sequence[str] = DEFAULT) -> bool:
    """Whether a row holds every objective (a finished trial)."""
    return all(row.get(o.key) is not None for o in of(names))


def reference(names: Sequence[str] = DEFAULT, fp_metrics: Mapping[str, Any] | None = None) -> tuple[float, ...]:
    """The hypervolume's reference point, maximised, from the FP model's metrics: no accuracy,
    no compression (1x), and each other objective's own reference (latency: twice the FP model's)."""
    fp = fp_metrics or {}
    points = []
    for o in of(names):
        try:
            value = float(o.reference(fp))
        except KeyError as err:
            raise ValueError(f"the {o.name} objective's reference needs the FP model's {err.args[0]}") from None
        points.append(value if o.mode == "max" else -value)
    return tuple(points)
