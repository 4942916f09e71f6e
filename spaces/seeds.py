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
#: Where the space searches a switch, the seeds start from the combination that measured best
#: in the fidelity bench (README): BN re-estimation alone. EMA without it lost accuracy after
#: gradated stages and at 3 bits, and QC did not beat BN re-estimation; the sampler explores both.
SEED_SWITCHES = {"ema": False, "qc": False, "bn": True}


def recommended_order(modules) -> list[str]:
    """FPN, head, backbone first where the task has them, then the other modules."""
    first = [m for m in RECOMMENDED_ORDER if m in modules]
    return first + [m for m in modules if m not in first]


def _geometric_mean(low: float, high: float) -> float:
    """The middle of a log-scaled range, within it (exp and log round: 1e-4 to 1e-4 gave 1.0000000000000009e-4,
    out of Optuna's range)."""
    return min(max(math.exp((math.log(low) + math.log(high)) / 2), low), high)


def sensitive_first(plan: mqat.BitPlan, table: mqat.SensitivityTable,
                    module_map: mqat.ModuleMap | None = None) -> list[str]:
    """The modules by the loss increase the plan's bits cause (summed over a module's groups),
    largest first: the module that loses most is quantized first, so every later stage
    fine-tunes it again."""
    def loss(module: str) -> float:
        units = module_map.units_of(module) if module_map is not None else (module,)
        return sum(table.delta[u].get(plan.weight_bits[u], 0.0) for u in units)

    modules = module_map.names if module_map is not None else table.modules
    return sorted(modules, key=lambda m: -loss(m))


def seed_point(plan: mqat.BitPlan, space: SpaceConfig, table: mqat.SensitivityTable | None = None,
               module_map: mqat.ModuleMap | None = None) -> dict[str, Any]:
    """One seed: only the parameters the space searches, with the plan's bits. The order is
    the most sensitive module first when ``table`` is given, else the recommended order."""
    point: dict[str, Any] = {}
    if space.order == SEARCH:
        order = sensitive_first(plan, table, module_map) if table is not None else recommended_order(space.modules)
        point["order"] = order_name(order)
    for unit in space.bit_units:
        point[f"bits_{unit}"] = plan.weight_bits[unit]
    if isinstance(space.act_bits, (list, tuple)):
        point["act_bits"] = space.top_act_bits
    for name, rate, default in (("ema", "ema_decay", DEFAULT_EMA_DECAY), ("qc", "qc_lr", DEFAULT_QC_LR)):
        switch = getattr(space, name)
        if switch == SEARCH:
            point[name] = SEED_SWITCHES[name]
        if point.get(name, switch) is True:
            low, high = getattr(space, rate)
            point[rate] = min(max(default, low), high)
    if space.bn == SEARCH:
        point["bn"] = SEED_SWITCHES["bn"]
    point["lr"] = _geometric_mean(*space.lr)
    if isinstance(space.epochs_per_stage, (list, tuple)):
        point["epochs_per_stage"] = space.fewest_epochs
    return point


def seed_points(plans: Mapping[float, mqat.BitPlan], space: SpaceConfig,
                table: mqat.SensitivityTable | None = None,
                module_map: mqat.ModuleMap | None = None) -> list[dict[str, Any]]:
    """Seeds for ILP plans (one per target), duplicates removed, in target order."""
    points, seen = [], set()
    for plan in plans.values():
        point = seed_point(plan, space, table, module_map)
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points
