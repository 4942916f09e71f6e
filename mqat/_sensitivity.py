"""Sensitivity: how much the loss grows when one module alone is quantized to b bits."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._calibrate import Forward, calibrate
from ._module_map import ModuleMap
from ._plan import FULL_PRECISION, QUANT_BITS, BitPlan
from ._quantize import quantize_

LossFn = Callable[[nn.Module, Any], Tensor]


@dataclass(frozen=True)
class SensitivityTable:
    """``delta[unit][bits]``: mean loss increase over the full-precision ``base_loss``; a unit is
    a module, or a group of one where the module map has groups."""

    base_loss: float
    delta: Mapping[str, Mapping[int, float]]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.delta)

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(next(iter(self.delta.values())))

    def to_dict(self) -> dict[str, Any]:
        # JSON keys are strings: bits are written as "4" and read back as 4.
        return {"base_loss": self.base_loss,
                "delta": {m: {str(b): v for b, v in row.items()} for m, row in self.delta.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensitivityTable:
        return cls(float(data["base_loss"]),
                   {m: {int(b): float(v) for b, v in row.items()} for m, row in data["delta"].items()})

    def __str__(self) -> str:
        width = max(len(m) for m in self.modules)
        lines = [f"{'module':<{width}}  " + "  ".join(f"{b:>2}-bit" for b in self.bits)]
        for m, row in self.delta.items():
            lines.append(f"{m:<{width}}  " + "  ".join(f"{row[b]:6.3f}" for b in self.bits))
        return f"base loss {self.base_loss:.4f}; loss increase per module (or group) and bits:\n" + "\n".join(lines)


@torch.no_grad()
def _mean_loss(model: nn.Module, loss_fn: LossFn, batches: Sequence) -> float:
    model.eval()
    return sum(float(loss_fn(model, b)) for b in batches) / len(batches)


def sensitivity(model: nn.Module, module_map: ModuleMap, *, loss_fn: LossFn, batches: Iterable,
                bits: Sequence[int] = (2, 3, 4, 6, 8), act_bits: int = FULL_PRECISION,
                forward: Forward | None = None, on_progress: Callable[[int, int], None] | None = None) -> SensitivityTable:
    """Measure ``Omega_m(b)``: the loss increase when only module m's weights get b bits (each
    unit's, where the map splits modules into groups).

    No training: each (module, bits) pair quantizes a copy of ``model`` (weights to b bits,
    inputs to ``act_bits``), calibrates it as the flow does (:func:`calibrate`, MSE rules, on
    ``batches``), and averages ``loss_fn(model, batch)`` over ``batches``. ``forward(model,
    batch)`` runs a batch for calibration (default: its first item). The model is unchanged.
    ``on_progress(done, total)`` is called after each evaluation.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("sensitivity needs at least one batch")
    for b in bits:
        if isinstance(b, bool) or b not in QUANT_BITS:
            raise ValueError(f"sensitivity bits must be among {list(QUANT_BITS)}, but got {b!r}")
    module_map.validate(model)
    units = module_map.units
    total, done = len(units) * len(bits) + 1, 1
    base = _mean_loss(model, loss_fn, batches)
    if on_progress:
        on_progress(done, total)
    delta: dict[str, dict[int, float]] = {}
    for unit in units:
        delta[unit] = {}
        for b in bits:
            plan = BitPlan({u: b if u == unit else FULL_PRECISION for u in units},
                           act_bits={u: act_bits if u == unit else FULL_PRECISION for u in units})
            probe = quantize_(copy.deepcopy(model), plan, module_map, modules=[module_map.module_of(unit)])
            calibrate(probe, batches, forward=forward)
            delta[unit][int(b)] = _mean_loss(probe, loss_fn, batches) - base
            done += 1
            if on_progress:
                on_progress(done, total)
    return SensitivityTable(base, delta)
