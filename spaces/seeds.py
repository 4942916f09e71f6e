"""Seed points: ILP bit plans, with the recommended order and default EMA/QC settings,
written in the space's own parameters so ``OptunaSearch`` runs them first."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mqat

from .space import SEARCH, SpaceConfig, order_name

#: The order the MQAT paper found best for WDR-style networks: FPN, then head, then backbone.
RECOMMENDED_ORDER = ("fpn", "head", "backbone")
DEFAULT_EMA_DECAY = 0.999
DEFAULT_QC_LR = 1e-3


def recommended_order(modules) -> list[str]:
    """FPN, head, backbone first where the task has them, then the other modules."""
    first = [m for m in RECOMMENDED_ORDER if m in modules]
    return first + [m for m in modules if m not in first]


def _geometric_mean(low: float, high: float) -> float:
    return math.exp((math.log(low) + math.log(high)) / 2)


def seed_point(plan: mqat.BitPlan, space: SpaceConfig) -> dict[str, Any]:
    """One seed: only the parameters the space searches, with the plan's bits."""
    point: dict[str, Any] = {}
    if space.order == SEARCH:
        point["order"] = order_name(recommended_order(space.modules))
    for module in space.modules:
        point[f"bits_{module}"] = plan.weight_bits[module]
    if isinstance(space.act_bits, (list, tuple)):
        point["act_bits"] = space.top_act_bits
    for name, rate, default in (("ema", "ema_decay", DEFAULT_EMA_DECAY), ("qc", "qc_lr", DEFAULT_QC_LR)):
        switch = getattr(space, name)
        if switch == SEARCH:
            point[name] = True
        if switch is not False:
            low, high = getattr(space, rate)
            point[rate] = min(max(default, low), high)
    point["lr"] = _geometric_mean(*space.lr)
    if isinstance(space.epochs_per_stage, (list, tuple)):
        point["epochs_per_stage"] = space.fewest_epochs
    return point


def seed_points(plans: Mapping[float, mqat.BitPlan], space: SpaceConfig) -> list[dict[str, Any]]:
    """Seeds for ILP plans (one per target), duplicates removed, in target order."""
    points, seen = [], set()
    for plan in plans.values():
        point = seed_point(plan, space)
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points
