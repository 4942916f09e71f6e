"""Peers: mqat-search's bit allocation beside what a user would install instead, NNCF 2.19.0's
HAWQ precision initializer and NVIDIA ModelOpt 0.47.0's ``mtq.auto_quantize``.

Every arm chooses per-layer weight bits (from the task's space, activations at 8 bits, the first
and last layers at full precision) for the same trained FP model at each target compression; every
plan is then trained alike, by the project's joint LSQ QAT at one full trial's budget, and scored
on the test split. The mqat-search arm is the simplest at equal compute: the ILP over its own
sensitivity table (``mqat_arm``). The peers run in their own venvs (``make peers``) and only
choose bits (``nncf_worker``, ``modelopt_worker``); a missing venv gives a row saying so.

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
    """The section's rows: per task, arm, target and seed a trained plan, then the hypervolumes."""
    from .choose import choose_all
    from .rows import hypervolume_rows, missing_row
    from .training import train_all
    from .venvs import available

    settings = settings or (QUICK if quick else FULL)
    have, missing = available()
    rows = [missing_row(p.arm, p.python().parents[1]) for p in missing]
    for task in settings.tasks:
        choices, failed = choose_all(task, quick, have, settings.targets)
        trained = train_all(task, quick, choices, settings.seeds)
        rows += failed + trained + hypervolume_rows(trained)
    return rows
