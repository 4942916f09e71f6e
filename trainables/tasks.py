"""The task interface the trainable and the search use, and the registry of tasks by name.

A task owns a model family with its module map, its data, its loss and its metric:

* ``build_model()``: a fresh float model on the task's device;
* ``module_map``: the :class:`mqat.ModuleMap` of that model;
* ``train_epoch(model, optimizer, on_step, *, images=None) -> mean loss`` and
  ``evaluate(model, *, images=None) -> metrics`` (with ``"accuracy"``), the two callables
  :func:`mqat.run_mqat` takes; ``images`` limits an epoch or a scoring to that many images;
* ``loss_fn(model, batch)`` and ``sensitivity_batches(count)`` for :func:`mqat.sensitivity`;
* ``fingerprint()``: what determines the data and the model, for cache keys.
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
    def evaluate(self, model: nn.Module, *, images: int | None = None) -> dict[str, float]: ...
    def loss_fn(self, model: nn.Module, batch: Any) -> Tensor: ...
    def sensitivity_batches(self, count: int) -> list: ...
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
