"""The task interface the trainable and the search use, and the registry of tasks by name.

A task owns a model family with its module map, its data, its loss and its metric:

* ``build_model()``: a fresh float model on the task's device;
* ``module_map``: the :class:`mqat.ModuleMap` of that model;
* ``train_epoch(model, optimizer, on_step, *, images=None) -> mean loss`` and
  ``evaluate(model, *, images=None, split="val") -> metrics`` (with ``"accuracy"``), the two
  callables :func:`mqat.run_mqat` takes; ``images`` limits an epoch or a scoring to that many
  images; ``split`` is ``"val"`` (every decision of a search) or ``"test"`` (the final report
  only); ``steps_per_epoch(images=None)``: the optimizer steps of one such epoch;
* ``loss_fn(model, batch)`` and ``sensitivity_batches(count)`` (validation batches, also used
  to calibrate quantizers) for :func:`mqat.sensitivity` and :func:`mqat.calibrate`;
  ``train_batches(count)``: un-augmented training batches for :func:`mqat.reestimate_bn`;
* ``fingerprint()``: what determines the data and the model, for cache keys.

Randomness (data order, augmentation) is drawn from torch's global generator, which the flow
reseeds per stage from the trial's seed (:func:`mqat.seed_everything`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

import mqat


class Task(Protocol):
    module_map: mqat.ModuleMap

    def build_model(self) -> nn.Module: ...
    def train_epoch(self, model: nn.Module, optimizer, on_step: Callable[[], None], *,
                    images: int | None = None) -> float: ...
    def evaluate(self, model: nn.Module, *, images: int | None = None,
                 split: str = "val") -> dict[str, float]: ...
    def steps_per_epoch(self, images: int | None = None) -> int: ...
    def loss_fn(self, model: nn.Module, batch: Any) -> Tensor: ...
    def sensitivity_batches(self, count: int) -> list: ...
    def train_batches(self, count: int) -> list: ...
    def fingerprint(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TaskEntry:
    config_class: type
    factory: Callable[..., Task]
    #: the module names of the task's model, known from its config alone (no data, no model)
    module_names: Callable[[Any], list[str]]


def _registry() -> dict[str, TaskEntry]:
    from .pose import PoseConfig, PoseTask
    from .pose.network import MODULE_MAP
    return {"pose": TaskEntry(PoseConfig, PoseTask, lambda config: list(MODULE_MAP))}


def task_names() -> list[str]:
    return sorted(_registry())


def get_task(name: str) -> TaskEntry:
    """The config class and factory of the task ``name``; ValueError naming the known tasks."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown task {name!r}: the known tasks are {sorted(registry)}")
    return registry[name]
