"""Spaces of the baselines, run in the same machinery as the MQAT search.

* ``uniform``: plain LSQ, every module at once with the same bits; the learning rate searched.
* ``ilp-only``: the ILP plans (one per target) trained jointly; no order, no EMA, QC or BN re-estimation.
"""
from __future__ import annotations

import math
from typing import Any

from .settings import UNIFORM
from .space import SpaceConfig


def uniform_space(trial, space: SpaceConfig) -> dict[str, Any]:
    """Same bits for every module (every unit: group or layer), all quantized at once, no EMA, no QC,
    no BN re-estimation."""
    bits = trial.suggest_categorical("bits", list(space.weight_bits))
    trial.suggest_float("lr", *space.lr, log=True)
    return {"order": UNIFORM, **{f"bits_{u}": bits for u in space.bit_units},
            "act_bits": space.top_act_bits, "ema": False, "qc": False,
            "bn": False, "epochs_per_stage": space.fewest_epochs}


def ilp_space(trial, space: SpaceConfig, plans: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One of the ILP plans (named by target), trained jointly at the space's middle lr."""
    name = trial.suggest_categorical("plan", sorted(plans))
    lr = math.exp(sum(math.log(v) for v in space.lr) / 2)
    return {"order": UNIFORM, **{f"bits_{m}": b for m, b in plans[name].items()},
            "act_bits": space.top_act_bits, "ema": False, "qc": False, "bn": False, "lr": lr,
            "epochs_per_stage": space.fewest_epochs}


def ilp_targets(low: float, high: float, count: int) -> list[float]:
    """``count`` targets spread geometrically from ``low`` to ``high`` (ilp-only's budget)."""
    if count == 1:
        return [low]
    ratio = (high / low) ** (1 / (count - 1))
    return [round(low * ratio**i, 3) for i in range(count)]
