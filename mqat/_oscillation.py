"""Weight oscillation tracking (Nagel et al., ICML 2022), per module.

Per quantized weight, the integer level is tracked after every optimizer step. A change whose
direction is opposite to the weight's previous change is an oscillation; the frequency is
``f <- m * osc + (1 - m) * f`` (m = 0.01). The fraction of weights with ``f > threshold`` is
the oscillating fraction.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._module_map import ModuleMap
from ._quantize import quantized_layers


class _WeightState:
    __slots__ = ("direction", "frequency", "level")

    def __init__(self, level: Tensor):
        self.level = level
        self.direction = torch.zeros_like(level, dtype=torch.int8)
        self.frequency = torch.zeros_like(level, dtype=torch.float32)


class OscillationTracker:
    """Tracks how often each quantized weight flips back and forth between integer levels.

    Example::

        tracker = OscillationTracker(model, module_map)
        ...; optimizer.step(); tracker.update()
        tracker.fraction()            # {"backbone": 0.01, "fpn": 0.04, ...}
    """

    def __init__(self, model: nn.Module, module_map: ModuleMap, *, momentum: float = 0.01,
                 threshold: float = 0.005):
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must lie in (0, 1], but got {momentum!r}")
        self.momentum, self.threshold = momentum, threshold
        self.module_map = module_map
        self._states: dict[str, _WeightState] = {}
        self._owner: dict[str, str] = {}
        self.refresh(model)

    def refresh(self, model: nn.Module) -> None:
        """Start tracking layers quantized since the last call (keeps earlier layers' history)."""
        self._layers = {n: layer for n, layer in quantized_layers(model)
                        if layer.weight_quant is not None}
        for name in self._layers:
            self._owner.setdefault(name, self.module_map.owners(name)[0])

    @torch.no_grad()
    def update(self) -> None:
        """Record one optimizer step."""
        for name, layer in self._layers.items():
            wq = layer.weight_quant
            if wq is None or not wq.is_initialized():  # (refresh keeps layers with a weight quantizer)
                continue
            level = wq.integers(layer.weight).to(torch.int16)
            state = self._states.get(name)
            if state is None:
                self._states[name] = _WeightState(level)
                continue
            self.observe(state, level)

    def observe(self, state: _WeightState, level: Tensor) -> None:
        change = torch.sign(level - state.level).to(torch.int8)
        moved = change != 0
        oscillated = moved & (change == -state.direction)
        state.frequency.mul_(1 - self.momentum).add_(oscillated.float(), alpha=self.momentum)
        state.direction = torch.where(moved, change, state.direction)
        state.level = level

    def fraction(self) -> dict[str, float]:
        """Per module: the fraction of its tracked weights whose frequency exceeds the threshold."""
        hits: dict[str, float] = {}
        counts: dict[str, int] = {}
        for name, state in self._states.items():
            module = self._owner[name]
            hits[module] = hits.get(module, 0.0) + float((state.frequency > self.threshold).sum())
            counts[module] = counts.get(module, 0) + state.frequency.numel()
        return {m: hits[m] / counts[m] for m in hits}

    def overall(self) -> float:
        """The oscillating fraction over every tracked weight (0 when nothing is tracked)."""
        total = sum(s.frequency.numel() for s in self._states.values())
        if total == 0:
            return 0.0
        hits = sum(float((s.frequency > self.threshold).sum()) for s in self._states.values())
        return hits / total
