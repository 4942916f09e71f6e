"""The short task contract: a base class that turns a network, its data and its score into a task.

A task on this base writes six things; the base provides the rest of the full contract
(``trainables/tasks.py``): the training epoch, the evaluation loop, ``steps_per_epoch``, the
sensitivity, calibration and BN batches, ``fingerprint`` (from the config), a no-op
``prepare_data`` and the device rule every task shares. ::

    class MyTask(BaseTask):
        Config = MyConfig                                      # a dataclass of the task's keys
        metric = Metric(name="top-1")                          # how the score reads
        modules = {"backbone": ["features."], "head": ["classifier."]}   # names and prefixes

        def network(self) -> nn.Module: ...                    # a fresh float model
        def dataset(self, split: str) -> Dataset: ...          # "train", "val" or "test"
        def loss(self, model, batch) -> Tensor: ...            # a training batch's loss
        def score(self, model, batches) -> dict: ...           # {"accuracy", "accuracy_se", ...}

Optional: ``augment(batch)`` (training batches only; the default changes nothing),
``baseline()`` (the metrics of a model that learned nothing: the FP check compares against it),
``modules_for(config)`` where the module map depends on the config, ``batch_size`` (the
config's ``batch_size`` where it has one, else 64).

A dataset is anything with ``len`` and integer indexing that gives ``(input, target)`` pairs;
a :class:`torch.utils.data.TensorDataset` is batched by slicing its tensors (no per-item copy).
Batches come in a fresh random order each epoch, drawn from torch's global generator, which the
search seeds; validation and test batches come in the dataset's order.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

import mqat

from .device import pick_device
from .tasks import Metric

__all__ = ["BaseTask", "Metric", "to_device"]

SPLITS = ("train", "val", "test")


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch's tensors on ``device``, inside tuples, lists and dicts too."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


class _TensorBatches:
    """Batches of a TensorDataset by slicing its tensors at an index order: sized, re-iterable."""

    def __init__(self, dataset: TensorDataset, order: Tensor, batch_size: int):
        self.dataset, self.order, self.batch_size = dataset, order, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self):
        for index in self.order.split(self.batch_size):
            yield tuple(t[index] for t in self.dataset.tensors)


class BaseTask:
    """The full task contract from six members (see the module's docstring)."""

    Config: ClassVar[type]
    metric: ClassVar[Metric] = Metric()
    modules: ClassVar[dict[str, list[str]]] = {}

    def __init__(self, config: Any, *, cache_dir: str | Path = "data", device: str = "auto",
                 progress: bool = True):
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.device = pick_device(device)
        self.progress = progress
        self._datasets: dict[str, Dataset] = {}
        self.module_map = self.make_module_map()

    # ---- what a task writes
    def network(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must define network()")

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError(f"{type(self).__name__} must define dataset(split)")

    def loss(self, model: nn.Module, batch: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define loss(model, batch)")

    def score(self, model: nn.Module, batches: Iterable) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must define score(model, batches)")

    def augment(self, batch: Any) -> Any:
        return batch

    @classmethod
    def modules_for(cls, config: Any) -> dict[str, list[str]]:
        """The module map's names and layer-name prefixes (by default the class's ``modules``)."""
        return dict(cls.modules)

    # ---- the full contract, derived
    @classmethod
    def module_names(cls, config: Any) -> list[str]:
        return list(cls.modules_for(config))

    def make_module_map(self) -> mqat.ModuleMap:
        """The task's :class:`mqat.ModuleMap`, made once per instance from ``modules_for``."""
        return mqat.ModuleMap(self.modules_for(self.config),
                              fp_first_last=bool(getattr(self.config, "fp_first_last", False)))

    @property
    def batch_size(self) -> int:
        return int(getattr(self.config, "batch_size", 64))

    def build_model(self) -> nn.Module:
        return self.network().to(self.device)

    def prepare_data(self) -> None:
        """Nothing by default: datasets are read on first use (override to render or download)."""

    def fingerprint(self) -> dict[str, Any]:
        return {"task": f"{type(self).__module__}:{type(self).__qualname__}", "config": asdict(self.config)}

    def data(self, split: str) -> Dataset:
        """The split's dataset, read once per task instance."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, but got {split!r}")
        if split not in self._datasets:
            self._datasets[split] = self.dataset(split)
        return self._datasets[split]

    def batches(self, split: str, *, images: int | None = None, shuffle: bool = False) -> Iterable:
        """The split's batches (first ``images`` only, or a random ``images`` when shuffled), on
        the task's device; sized (``len``) and re-iterable."""
        dataset = self.data(split)
        order = torch.randperm(len(dataset)) if shuffle else torch.arange(len(dataset))
        order = order[:images]
        if isinstance(dataset, TensorDataset):
            loader: Iterable = _TensorBatches(dataset, order, self.batch_size)
        else:
            loader = DataLoader(Subset(dataset, order.tolist()), batch_size=self.batch_size)
        return _OnDevice(loader, self.device)

    def steps_per_epoch(self, images: int | None = None) -> int:
        count = len(self.data("train")) if images is None else min(images, len(self.data("train")))
        return math.ceil(count / self.batch_size)

    def train_epoch(self, model: nn.Module, optimizer, on_step, *, images: int | None = None) -> float:
        """One pass over (a random ``images`` of) the training split; returns the mean loss."""
        total, seen = 0.0, 0
        for batch in self.batches("train", images=images, shuffle=True):
            loss = self.loss(model, self.augment(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            count = len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
            total, seen = total + loss.item() * count, seen + count
        return total / max(seen, 1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, *, images: int | None = None, split: str = "val") -> dict[str, float]:
        model.eval()
        return self.score(model, self.batches(split, images=images))

    def loss_fn(self, model: nn.Module, batch: Any) -> Tensor:
        return self.loss(model, batch)

    def sensitivity_batches(self, count: int) -> list:
        return list(self.batches("val", images=count * self.batch_size))

    def train_batches(self, count: int) -> list:
        """Un-augmented training batches in the dataset's order: what calibration and BN
        re-estimation fit on."""
        return list(self.batches("train", images=count * self.batch_size))


class _OnDevice:
    """A sized, re-iterable view of batches moved to a device as they are read."""

    def __init__(self, batches: Iterable, device: torch.device):
        self.inner, self.device = batches, device

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self):
        return (to_device(batch, self.device) for batch in self.inner)
