"""The task contract: what a network, its data and its metric must offer to be searched.

A task is a class, named in a config's ``task:`` section by a short name (``pose``; installed
packages add names through the entry-point group ``mqat.tasks``) or by import path
(``my_package.my_module:MyTask``; the config file's folder is on the import path). The section's
other keys are the task's own, read into ``MyTask.Config``. The whole contract:

Class level, read on the driver before anything starts:

* ``Config``: a dataclass of the task's keys (defaults for all; ``__post_init__`` may raise
  ``ValueError`` with a message for the user);
* ``module_names(config) -> list[str]``: the modules of the model, e.g. backbone, neck, head;
  they name the search space's dimensions and must equal ``module_map.names``;
* ``metric``: a :class:`Metric`: how the score reads in tables, logs and plots (a property where
  it depends on the config).

Optional: ``baseline() -> dict``, the metrics of a model that learned nothing (the mean pose,
chance), printed after pretraining and the bar the FP model must clear; ``code_modules(config)
-> list[str]``, modules the task imports by name (a classify task's model builder), shipped to
workers where they are the user's; ``example_input() -> Tensor``, one input batch for the ONNX
export (by default, the images of the first ``sensitivity_batches(1)`` batch, cut to one).

Instance, ``MyTask(config, *, cache_dir, device, progress)``; cheap to create (data on demand):

* ``module_map``: the :class:`mqat.ModuleMap` of the model; ``build_model()``: a fresh float
  model on the task's device;
* ``prepare_data()``: make the data ready (render, download, read); the driver calls it once,
  before pretraining and before any trial, so trials only read what it left in ``cache_dir``;
* ``train_epoch(model, optimizer, on_step, *, images=None) -> mean loss``: one epoch over the
  training split (or a random ``images`` of it), ``on_step()`` after every optimizer step;
  ``steps_per_epoch(images=None)``: the optimizer steps of such an epoch;
* ``evaluate(model, *, images=None, split="val") -> dict``: ``"accuracy"`` (the score the search
  maximises: higher is better; a task whose metric is an error reports e.g. 1 - error),
  ``"accuracy_se"`` (its standard error) and any companion metrics; ``split`` is ``"val"``
  (every decision of a search) or ``"test"`` (only the front's final report), ``images`` the
  first images of the split only (cheaper scoring between stages);
* ``loss_fn(model, batch)`` and ``sensitivity_batches(count)`` (validation batches) for
  :func:`mqat.sensitivity`, a decision of the search; ``train_batches(count)``: un-augmented
  training batches for what is fitted, :func:`mqat.calibrate` and :func:`mqat.reestimate_bn`;
* ``fingerprint()``: JSON-able data that determine the data and the model (cache keys).

Randomness (data order, augmentation, initial weights) must come from torch's global generator,
which the search seeds per pretraining and per stage of a trial (:func:`mqat.seed_everything`).

Most tasks need not write all of this: :class:`trainables.base.BaseTask` derives it from a
config, a module map, the network, a dataset per split, a loss and a score.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import sys
import sysconfig
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

import mqat
from tracking.metric import Metric

__all__ = ["Metric", "Task", "check_task", "code_hash", "code_hash_of_file", "example_input", "get_task",
           "modules_to_ship", "task_names"]

#: Tasks that ship with mqat-search; installed packages add theirs through this entry-point group.
BUILT_IN = {"pose": "trainables.pose:PoseTask", "detect": "trainables.detect:DetectTask",
            "classify": "trainables.classify:ClassifyTask", "yolo": "trainables.yolo:YoloTask"}
ENTRY_POINT_GROUP = "mqat.tasks"
DEFAULT_TASK = "pose"  # a config's task when it names none


class Task(Protocol):
    Config: type
    metric: Metric
    module_map: mqat.ModuleMap

    @classmethod
    def module_names(cls, config: Any) -> list[str]: ...
    def build_model(self) -> nn.Module: ...
    def prepare_data(self) -> None: ...
    def train_epoch(self, model: nn.Module, optimizer, on_step: Callable[[], None], *,
                    images: int | None = None) -> float: ...
    def evaluate(self, model: nn.Module, *, images: int | None = None,
                 split: str = "val") -> dict[str, float]: ...
    def steps_per_epoch(self, images: int | None = None) -> int: ...
    def loss_fn(self, model: nn.Module, batch: Any) -> Tensor: ...
    def sensitivity_batches(self, count: int) -> list: ...
    def train_batches(self, count: int) -> list: ...
    def fingerprint(self) -> dict[str, Any]: ...


CLASS_MEMBERS = ("Config", "module_names", "metric")
INSTANCE_MEMBERS = ("module_map", "build_model", "prepare_data", "train_epoch", "evaluate", "steps_per_epoch",
                    "loss_fn", "sensitivity_batches", "train_batches", "fingerprint")


def _registered() -> dict[str, str]:
    """Short names: the built-in tasks and those of installed packages (entry points)."""
    names = dict(BUILT_IN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(entry.name, entry.value)
    return names


def task_names() -> list[str]:
    return sorted(_registered())


def import_path(name: str) -> str:
    """``module:Class`` of a task given by short name or import path; ValueError otherwise."""
    registered = _registered()
    if name in registered:
        return registered[name]
    if ":" not in name:
        raise ValueError(f"unknown task {name!r}: give a known name {sorted(registered)} or an "
                         "import path 'module:Class'")
    return name


def get_task(name: str, *, search_path: str | Path | None = None) -> type:
    """The task class ``name`` names (``search_path``: a folder to import from first); ValueError
    with one line when it cannot be imported or misses part of the contract."""
    module_name, _, class_name = import_path(name).partition(":")
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure of the user's module is reported as one line
        raise ValueError(f"cannot import task module {module_name!r}: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"module {module_name!r} has no class {class_name!r}")  # noqa: TRY004 - a config error
    missing = [m for m in CLASS_MEMBERS if not hasattr(cls, m)]
    if missing or not dataclasses.is_dataclass(cls.Config):
        raise ValueError(f"task {name!r} misses {missing or ['Config as a dataclass']} of the task contract "
                         "(trainables/tasks.py)")
    return cls


def example_input(task: Task) -> Tensor:
    """One input batch of one image: the task's ``example_input()``, or the first validation batch's
    images (the first element of a tuple or list batch)."""
    if hasattr(task, "example_input"):
        return task.example_input()
    batch = task.sensitivity_batches(1)[0]
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    return inputs[:1]


def check_task(task: Task, config: Any) -> None:
    """ValueError with one line if an instance misses part of the contract, or its module map
    disagrees with the module names its class declares."""
    missing = [m for m in INSTANCE_MEMBERS if not hasattr(task, m)]
    if missing:
        raise ValueError(f"task {type(task).__name__} misses {missing} of the task contract (trainables/tasks.py)")
    declared = list(type(task).module_names(config))
    if list(task.module_map.names) != declared:
        raise ValueError(f"task {type(task).__name__}: module_names() gives {declared} but its module map "
                         f"has {list(task.module_map.names)}")


#: This project's own packages: every worker has them already.
PROJECT_PACKAGES = ("mqat", "search", "spaces", "trainables", "tracking")


def _source_file(module_name: str) -> Path | None:
    """The source file of an imported module where it is not Python's own library nor an
    installed package (a task's or a user's code); None otherwise."""
    origin = getattr(sys.modules.get(module_name), "__file__", None)
    if origin is None:
        return None
    path = Path(origin).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    return None if {"site-packages", "dist-packages"} & set(path.parts) or stdlib in path.parents else path


def _user_origin(module_name: str) -> Path | None:
    """The file or package folder of an imported top-level module that workers may lack: neither
    this project's nor a library's."""
    top_name = module_name.split(".")[0]
    path = None if top_name in PROJECT_PACKAGES else _source_file(top_name)
    return path.parent if path is not None and path.name == "__init__.py" else path


def _siblings(path: Path) -> list[Path]:
    """A module file with the Python files and packages beside it (what it may import)."""
    beside = [p for p in path.parent.iterdir() if not p.name.startswith((".", "_"))
              and ((p.is_file() and p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file()))]
    return sorted(set(beside) | {path})


def modules_to_ship(name: str, extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """What Ray ships to every worker (``py_modules``) for a task: its module's package folder,
    or its file with the Python files and packages beside it (so that sibling imports work on a
    cluster); the same for ``extra`` modules the task imports by name (a classify task's model
    builder). This project's packages and installed libraries are on every worker already."""
    shipped: set[Path] = set()
    for module_name in (import_path(name).partition(":")[0], *extra):
        path = _user_origin(module_name)
        if path is not None:
            shipped |= set(_siblings(path) if path.is_file() else [path])
    return sorted(shipped)


def code_files(cls: type) -> list[Path]:
    """The source a task class runs: each of its classes' modules (libraries aside); for a module
    inside a package that is not one of this project's top-level ones (``trainables.pose``, a
    user's ``my_task``), every ``.py`` file of that package, since its helpers shape the model."""
    files: set[Path] = set()
    for klass in cls.__mro__:
        path = _source_file(klass.__module__)
        if path is None:
            continue
        package = klass.__module__.rpartition(".")[0]
        files |= set(path.parent.glob("*.py")) if package and package not in PROJECT_PACKAGES else {path}
    return sorted(files)


def code_hash(cls: type) -> str:
    """A hash of :func:`code_files`: a changed ``build_model`` (or helper) changes it, and with it
    the key of the cached FP model."""
    digest = hashlib.sha256()
    for path in code_files(cls):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_hash_of_file(module_name: str) -> str | None:
    """A hash of an imported module's source where it is a user's (a library's is None: its
    version pins it); a classify task's model builder, say."""
    path = _source_file(module_name)
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()[:16]
