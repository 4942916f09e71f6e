"""An exponential moving average of the whole model: latent weights, LSQ steps, BN statistics."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EMAConfig:
    """EMA hyperparameters: ``a_t = decay * (1 - exp(-t / warmup_steps))``, so ``a_0 = 0``."""

    decay: float = 0.9999
    warmup_steps: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), but got {self.decay!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"EMA warmup_steps must be >= 0, but got {self.warmup_steps!r}")


class ModelEMA:
    """A shadow copy ``W'(t) = a_t W'(t-1) + (1 - a_t) W(t)`` of every floating tensor of a model.

    Floating tensors (latent weights, LSQ step sizes of weights and activations, BN statistics)
    are averaged; integer and boolean buffers (counters, quantizer flags) are copied. The decay
    warms up from 0, so the first update copies the model and early updates are large.
    Evaluate and export :attr:`module`.

    Example::

        ema = ModelEMA(model, decay=0.999)
        for batch in loader:
            ...; optimizer.step(); ema.update(model)
        evaluate(ema.module)
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.9999, warmup_steps: int = 100):
        self.config = EMAConfig(decay, warmup_steps)
        self.updates = 0
        self.module = self._shadow_of(model)
        self._fresh: set[str] = set()  # tensors to copy, not average, at their first update

    @staticmethod
    def _shadow_of(model: nn.Module) -> nn.Module:
        shadow = copy.deepcopy(model).eval()
        shadow.requires_grad_(False)
        return shadow

    def decay_at(self, step: int) -> float:
        cfg = self.config
        if cfg.warmup_steps == 0:
            return cfg.decay
        return cfg.decay * (1.0 - math.exp(-step / cfg.warmup_steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current tensors into the average (call after each optimizer step)."""
        a = self.decay_at(self.updates)
        shadow = self.module.state_dict()
        floats_ema, floats_new, seen = [], [], set()
        for name, tensor in model.state_dict().items():
            target = shadow[name]
            if target.data_ptr() in seen:  # a module shared by several layers: averaged once
                continue
            seen.add(target.data_ptr())
            if target.is_floating_point() and name not in self._fresh:
                floats_ema.append(target)
                floats_new.append(tensor.detach())
            else:
                target.copy_(tensor)
        if floats_ema:
            torch._foreach_lerp_(floats_ema, floats_new, 1.0 - a)
        self._fresh.clear()
        self.updates += 1

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Restore a saved average (the shadow must already have the saved structure)."""
        self.module.load_state_dict(state)
        self.updates = updates
        self._fresh.clear()

    @torch.no_grad()
    def restart(self, model: nn.Module) -> None:
        """Start a new average from ``model`` (its structure included), warm-up and all.

        The gradated flow restarts at every stage: an average across a stage boundary mixes
        weights of two different networks (a module quantized or not) and BN statistics of both.
        """
        self.module = self._shadow_of(model)
        self.updates = 0
        self._fresh.clear()

    @torch.no_grad()
    def refresh(self, model: nn.Module) -> None:
        """Follow a change of the model's structure (a module was just quantized).

        Tensors that keep their name (latent weights, BN statistics, earlier quantizers) keep
        their average; new ones (the new quantizers' steps, set by their first batch) are
        copied from the model at the next update and averaged from then on.
        """
        old = self.module.state_dict()
        self.module = self._shadow_of(model)
        for name, tensor in self.module.state_dict().items():
            if name in old and old[name].shape == tensor.shape:
                tensor.copy_(old[name])
            else:
                self._fresh.add(name)
