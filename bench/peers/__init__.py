"""Peers: mqat-search's bit allocation beside what a user would install instead, NNCF 2.19.0's
HAWQ precision initializer and NVIDIA ModelOpt 0.47.0's ``mtq.auto_quantize``.

Every arm chooses per-layer weight bits (from the task's space, activations at 8 bits, the first
and last layers at full precision) for the same trained FP model at each target compression; every
plan is then trained alike, by the project's joint LSQ QAT at one full trial's budget, and scored
on the test split, its ONNX export timed beside FP. ``mqat-ilp`` is the project's own allocation
under the same training: the ILP over its layer-level sensitivity table (``mqat_arm``). The
project as a user runs it is ``search_arm``: real searches, one at the peers' compute (a trial per
target) and one at the config's own budget, their fronts on the test split. Per task the section
ends with each arm's hypervolume per seed and, for each of the project's arms against each peer,
how many points one dominates of the other's by more than two standard errors (``dominance_rows``),
and draws every arm's points (``plot``). The peers run in their own venvs (``make peers``) and
only choose bits (``nncf_worker``, ``modelopt_worker``); a missing venv gives a row saying so.

``python -m bench --only peers [--quick]``, or ``python -m bench.peers [--quick]``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    tasks: tuple[str, ...]
    targets: tuple[float, ...]  # weight compression, the project's measure
    seeds: tuple[int, ...]


FULL = Settings(tasks=("pose", "classify"), targets=(4, 6, 8, 12), seeds=(0, 1, 2))
QUICK = Settings(tasks=("pose",), targets=(4, 6, 8, 12), seeds=(0,))  # the tiny pose task


def run(quick: bool = False, settings: Settings | None = None) -> list[dict]:
    """The section's rows: per task, arm, target and seed a trained plan, the searches' fronts,
    then the hypervolumes and the dominance counts."""
    from .choose import choose_all
    from .mqat_arm import ARM
    from .plot import plot
    from .rows import dominance_rows, hypervolume_rows, missing_row
    from .search_arm import DEFAULT, EQUAL, run_searches
    from .training import train_all
    from .venvs import available

    settings = settings or (QUICK if quick else FULL)
    have, missing = available()
    rows = [missing_row(p.arm, p.python().parents[1]) for p in missing]
    for task in settings.tasks:
        choices, failed = choose_all(task, quick, have, settings.targets)
        scored = train_all(task, quick, choices, settings.seeds)
        scored += run_searches(task, quick, settings.targets, settings.seeds)
        rows += failed + scored + hypervolume_rows(scored) + dominance_rows(scored, ours=(EQUAL, DEFAULT, ARM))
        plot(task, scored)
    return rows
