"""YAML configuration -> validated, frozen dataclasses. Nothing in a config is executed.

Every key is checked: an unknown key is refused with the closest known one suggested, a
value of the wrong type or out of range with what was expected. Validation touches nothing
outside the config (no Ray, no MLflow, no files written).
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spaces import SpaceConfig
from tracking.objectives import check_objectives, of, on_export
from trainables.pretrain import PretrainConfig
from trainables.tasks import DEFAULT_TASK, check_task, get_task

from .methods import METHODS
from .samplers import SAMPLERS
from .schedulers import SCHEDULERS
from .storage import check_location


class ConfigError(ValueError):
    """Bad input: the command line reports it in one line and exits with status 2."""


def first_line(err: Exception) -> str:
    """An error's first line (a store's reason can run to many), for a ConfigError."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _shown(key: Any) -> str:
    """A key as the error shows it: as written, or quoted when it holds spaces or control
    characters (a stray ``\r`` must not split the one-line error)."""
    text = str(key)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _did_you_mean(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(value), known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a field's type hint, converting YAML lists to tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, but got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, but got {value!r}")
        return float(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, but got {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, but got {value!r}")
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, but got {value!r}")
    return value


def build(cls: type, data: Any, section: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, every key checked."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section} must be a mapping of keys to values, but got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown key {section}.{_shown(key)}{_suggest(str(key), sorted(fields))}")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


@dataclass(frozen=True)
class SearchConfig:
    """How the search runs: method, budget, sampler, ILP targets, resources, trial budget."""

    method: str = "mqat"
    num_samples: int = 12
    max_concurrent: int = 2
    sampler: str = "tpe"
    seed: int = 0
    targets: tuple[float, ...] = (4.0, 8.0, 12.0)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    storage_path: str | None = None
    shared_storage: bool = False  # storage_path is a filesystem every node mounts (a URI always is)
    max_failures: int = 1
    images_per_epoch: int | None = 512
    stage_eval_images: int | None = 500
    sensitivity_batches: int = 4
    calibration_batches: int = 8  # validation batches that set each stage's new quantizer steps
    bn_batches: int = 8  # training batches that re-estimate BN statistics (trials with bn on)
    reuse_actors: bool = True  # a worker runs trial after trial, its data set loaded once
    ilp_seeds: bool = True  # the mqat method starts from the ILP plans (false: the sampler alone)
    #: seconds trials may wait for resources while none runs before the search fails (null: forever)
    pending_timeout_s: float | None = 600.0
    #: what the search optimises: [accuracy, compression], or with latency (ONNX Runtime, minimised)
    objectives: tuple[str, ...] = ("accuracy", "compression")
    onnx: bool = True            # each trial exports its final model as ONNX (QDQ) and times it
    latency_batch: int = 8       # the batch size timed beside batch 1
    latency_runs: int = 20       # timed runs per batch size; the median is reported
    latency_threads: int = 1     # the runtime's threads while timing
    onnx_layout: str = "speed"   # speed (int8 kernels) or size (int4 for 2-4 bits): mqat.export_onnx
    latency_runtime: str = "onnxruntime"  # or openvino: where a trial's latency is measured
    #: early stopping: none, or moasha (Pareto-aware successive halving at the stages moasha_rungs)
    scheduler: str = "none"
    moasha_eta: int = 2          # a rung keeps the top 1/eta of the trials that reached it
    moasha_rungs: tuple[int, ...] = (0, 1)  # stage indexes (0: after the first module) where trials are ranked
    #: end the search once its module stages equal those of this many full trials (null: num_samples decides)
    budget_trials: float | None = None

    def __post_init__(self) -> None:
        for name, registry in (("method", METHODS), ("sampler", SAMPLERS), ("scheduler", SCHEDULERS)):
            value = getattr(self, name)
            if value not in registry:
                raise ValueError(f"search.{name} must be one of {list(registry)}, but got {value!r}"
                                 f"{_did_you_mean(value, list(registry))}")
        for name in ("num_samples", "max_concurrent", "sensitivity_batches", "calibration_batches",
                     "bn_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name} must be at least 1, but got {getattr(self, name)}")
        if self.max_failures < 0:
            raise ValueError(f"search.max_failures must be >= 0, but got {self.max_failures}")
        if not self.targets or any(t < 1 for t in self.targets):
            raise ValueError(f"search.targets must be compression factors >= 1, but got {list(self.targets)}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("search.cpus_per_trial must be > 0 and search.gpus_per_trial >= 0, "
                             f"but got {self.cpus_per_trial} and {self.gpus_per_trial}")
        if self.storage_path is not None:
            check_location(self.storage_path)
        if self.pending_timeout_s is not None and not self.pending_timeout_s > 0:
            raise ValueError("search.pending_timeout_s must be > 0 seconds (or null to wait forever), "
                             f"but got {self.pending_timeout_s}")
        check_objectives(self.objectives)
        if self.moasha_eta < 2 or not self.moasha_rungs or min(self.moasha_rungs) < 0:
            raise ValueError("search.moasha_eta must be >= 2 and search.moasha_rungs stage indexes >= 0, "
                             f"but got {self.moasha_eta} and {list(self.moasha_rungs)}")
        if self.budget_trials is not None and not self.budget_trials > 0:
            raise ValueError(f"search.budget_trials must be > 0 (or null), but got {self.budget_trials}")
        if on_export(self.objectives) and not self.onnx:
            measured = [o.name for o in of(self.objectives) if o.onnx]
            raise ValueError(f"search.objectives has {', '.join(measured)}, measured on the ONNX export: "
                             "set search.onnx: true")
        from mqat import LAYOUTS, RUNTIMES

        if self.onnx_layout not in LAYOUTS:
            raise ValueError(f"search.onnx_layout must be one of {list(LAYOUTS)}, but got {self.onnx_layout!r}")
        if self.latency_runtime not in RUNTIMES:
            raise ValueError(f"search.latency_runtime must be one of {list(RUNTIMES)}, but got {self.latency_runtime!r}")
        for name in ("latency_batch", "latency_runs", "latency_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name} must be at least 1, but got {getattr(self, name)}")
        for name in ("images_per_epoch", "stage_eval_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"search.{name} must be at least 1 (or null for all), but got {value}")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: on by default, a SQLite file in ``output_dir``; any tracking URI on clusters."""

    enabled: bool = True
    uri: str | None = None
    experiment: str | None = None


@dataclass(frozen=True)
class Config:
    """A whole run: the task and its settings, pretraining, and where outputs go."""

    name: str
    task_name: str
    task: Any
    pretrain: PretrainConfig
    output_dir: str
    cache_dir: str = "data"
    device: str = "auto"
    search: SearchConfig = SearchConfig()
    space: SpaceConfig = SpaceConfig()
    tracking: TrackingConfig = TrackingConfig()
    task_dir: str | None = None  # the config file's folder: a task module given by path may lie there

    def task_class(self) -> type:
        try:
            return get_task(self.task_name, search_path=self.task_dir)
        except ValueError as err:
            raise ConfigError(f"task.name: {err}") from None

    def task_instance(self, *, progress: bool = True):
        """The task object (cheap: data are built on first use), checked against the task
        contract. Raises ConfigError on bad paths or a task that breaks the contract."""
        try:
            task = self.task_class()(self.task, cache_dir=self.cache_dir, device=self.device, progress=progress)
            check_task(task, self.task)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return task


_TOP_KEYS = ("name", "output_dir", "cache_dir", "device", "task", "pretrain", "search", "space",
             "tracking")


def _space(data: Any, modules: tuple[str, ...]) -> SpaceConfig:
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"space must be a mapping of keys to values, but got {data!r}")
    data = dict(data or {})
    if "modules" in data:
        raise ConfigError("space.modules comes from the task's module map; remove it")
    return build(SpaceConfig, {**data, "modules": list(modules)}, "space")


def _check_rungs(search: SearchConfig, modules: tuple[str, ...]) -> None:
    """MOASHA ranks trials after module stages: the method must have them, the rungs must exist."""
    if search.scheduler != "moasha":
        return
    if not METHODS[search.method].module_stages:
        raise ConfigError(f"search.scheduler: moasha ranks trials between module stages, but method "
                          f"{search.method!r} quantizes every module in one stage; use method mqat")
    if max(search.moasha_rungs) >= len(modules):
        raise ConfigError(f"search.moasha_rungs: the network has {len(modules)} module stages (0 to "
                          f"{len(modules) - 1}), but got {list(search.moasha_rungs)}")


def config_from_dict(data: Any, *, source: str = "config", task_dir: str | Path | None = None) -> Config:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a YAML mapping at the top level")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"unknown key {_shown(key)}{_suggest(str(key), list(_TOP_KEYS))}")
    name = _coerce(data.get("name", "mqat"), str, "name")
    task_data = data.get("task") or {}
    if not isinstance(task_data, Mapping):
        raise ConfigError(f"task must be a mapping of keys to values, but got {task_data!r}")
    task_data = dict(task_data)
    task_name = _coerce(task_data.pop("name", DEFAULT_TASK), str, "task.name")
    try:
        task_class = get_task(task_name, search_path=task_dir)
    except ValueError as err:
        raise ConfigError(f"task.name: {err}") from None
    device = _coerce(data.get("device", "auto"), str, "device")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', but got {device!r}")
    task = build(task_class.Config, task_data, "task")
    modules = tuple(task_class.module_names(task))
    search = build(SearchConfig, data.get("search"), "search")
    _check_rungs(search, modules)
    return Config(
        name=name, task_name=task_name, task=task,
        pretrain=build(PretrainConfig, data.get("pretrain"), "pretrain"),
        output_dir=_coerce(data.get("output_dir", f"runs/{name}"), str, "output_dir"),
        cache_dir=_coerce(data.get("cache_dir", "data"), str, "cache_dir"),
        device=device, search=search,
        space=_space(data.get("space"), modules),
        tracking=build(TrackingConfig, data.get("tracking"), "tracking"),
        task_dir=str(Path(task_dir).resolve()) if task_dir is not None else None)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config (``yaml.safe_load``: no tags, no code)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return config_from_dict(data, source=str(path), task_dir=path.parent)
