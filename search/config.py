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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spaces import SpaceConfig
from tracking.objectives import check_objectives, of, on_export
from trainables.deploy import DeploySettings
from trainables.pretrain import PretrainConfig
from trainables.tasks import DEFAULT_TASK, check_task, get_task
from trainables.trainable import StageSettings

from .methods import METHODS
from .samplers import SAMPLERS
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


def merge(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A config mapping with ``changes`` applied, section by section (a nested mapping updates
    the section it names rather than replacing it)."""
    out = dict(data)
    for key, value in changes.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merge(out[key], value) if both else value
    return out


def build(cls: type, data: Any, section: str, moved: Mapping[str, str] | None = None) -> Any:
    """An instance of dataclass ``cls`` from a mapping, every key checked, sections (fields that
    are dataclasses) built alike. ``moved``: keys of earlier versions and where they live now."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section} must be a mapping of keys to values, but got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields and moved and key in moved:
            raise ConfigError(f"{section}.{key} has moved to {section}.{moved[key]}: write it there")
        if key not in fields:
            raise ConfigError(f"unknown key {section}.{_shown(key)}{_suggest(str(key), sorted(fields))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value, f"{section}.{key}")
            continue
        kwargs[key] = _coerce(value, hint, f"{section}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


@dataclass(frozen=True)
class ResourcesConfig:
    """What each trial asks of the cluster (``search.resources``)."""

    cpus_per_trial: float = 1.0  # CPUs a trial asks for; its torch threads follow
    gpus_per_trial: float = 0.0  # fractions allowed: 0.5 runs two trials per GPU

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("search.resources.cpus_per_trial must be > 0 and search.resources.gpus_per_trial >= 0, "
                             f"but got {self.cpus_per_trial} and {self.gpus_per_trial}")


@dataclass(frozen=True)
class StorageConfig:
    """Where Tune keeps the searches (``search.storage``): a directory, or an object-store URI."""

    path: str | None = None  # null: output_dir/ray
    shared: bool = False  # path is a filesystem every node mounts (a URI always is)

    def __post_init__(self) -> None:
        if self.path is not None:
            check_location(self.path)


@dataclass(frozen=True)
class SearchConfig:
    """How the search runs: method, budget, sampler, ILP targets, objectives; and its sections:
    each trial's resources, the storage, each stage's data, the deployment."""

    #: mqat (the gradated flow, order and bits searched), or the baselines uniform (plain LSQ, every
    #: module at once) and ilp-only (the ILP's plans, no order, EMA or QC)
    method: str = "mqat"
    num_samples: int = 12  # trials the search runs (the ILP seeds among them)
    #: end the search once its module stages equal those of this many full trials (null: num_samples decides)
    budget_trials: float | None = None
    max_concurrent: int = 2  # trials at a time
    #: ilp (ILP-guided: the additive model of the sensitivity table, refitted to the trials), tpe, gp
    #: (Optuna's GPSampler), nsga2 or random
    sampler: str = "ilp"
    seed: int = 0  # the sampler's seed; every trial's own seed derives from it
    targets: tuple[float, ...] = (4.0, 8.0, 12.0)  # compression factors the ILP solves for: the seed plans
    ilp_seeds: bool = True  # the mqat method starts from the ILP plans (false: the sampler alone)
    #: what the search optimises: [accuracy, compression], then any of tracking.objectives' others
    objectives: tuple[str, ...] = ("accuracy", "compression")
    sensitivity_batches: int = 4  # validation batches of the driver's sensitivity analysis
    max_failures: int = 1  # retries of a trial that failed (from its last finished stage)
    reuse_actors: bool = True  # a worker runs trial after trial, its data set loaded once
    #: seconds trials may wait for resources while none runs before the search fails (null: forever)
    pending_timeout_s: float | None = 600.0
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    stage: StageSettings = field(default_factory=StageSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)

    def __post_init__(self) -> None:
        for name, registry in (("method", METHODS), ("sampler", SAMPLERS)):
            value = getattr(self, name)
            if value not in registry:
                raise ValueError(f"search.{name} must be one of {list(registry)}, but got {value!r}"
                                 f"{_did_you_mean(value, list(registry))}")
        for name in ("num_samples", "max_concurrent", "sensitivity_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name} must be at least 1, but got {getattr(self, name)}")
        if self.budget_trials is not None and not self.budget_trials > 0:
            raise ValueError(f"search.budget_trials must be > 0 (or null), but got {self.budget_trials}")
        if self.max_failures < 0:
            raise ValueError(f"search.max_failures must be >= 0, but got {self.max_failures}")
        if not self.targets or any(t < 1 for t in self.targets):
            raise ValueError(f"search.targets must be compression factors >= 1, but got {list(self.targets)}")
        if self.pending_timeout_s is not None and not self.pending_timeout_s > 0:
            raise ValueError("search.pending_timeout_s must be > 0 seconds (or null to wait forever), "
                             f"but got {self.pending_timeout_s}")
        check_objectives(self.objectives)
        if on_export(self.objectives) and not self.deploy.onnx:
            measured = [o.name for o in of(self.objectives) if o.onnx]
            raise ValueError(f"search.objectives has {', '.join(measured)}, measured on the ONNX export: "
                             "set search.deploy.onnx: true")


#: where each flat key of earlier versions lives now, in ``search``: answered in one line
MOVED = {
    "cpus_per_trial": "resources.cpus_per_trial", "gpus_per_trial": "resources.gpus_per_trial",
    "storage_path": "storage.path", "shared_storage": "storage.shared",
    "images_per_epoch": "stage.images_per_epoch", "stage_eval_images": "stage.eval_images",
    "calibration_batches": "stage.calibration_batches", "bn_batches": "stage.bn_batches",
    "onnx": "deploy.onnx", "onnx_layout": "deploy.layout", "latency_runtime": "deploy.runtime",
    "latency_batch": "deploy.latency_batch", "latency_runs": "deploy.latency_runs",
    "latency_threads": "deploy.latency_threads",
}
#: keys of earlier versions that name MOASHA early stopping, retired: answered in one line that says why
RETIRED = ("scheduler", "moasha_rungs", "moasha_eta")


def _refuse_retired(search: Any) -> None:
    """ConfigError for a search section that sets MOASHA early stopping (``scheduler``, or the flat
    keys before it), naming where the compute budget it held (``budget_trials``) lives now."""
    key = next((k for k in RETIRED if k in search), None) if isinstance(search, Mapping) else None
    if key is None:  # (a search that is no mapping at all: build() says so)
        return
    budget = isinstance(search[key], Mapping) and "budget_trials" in search[key]
    raise ConfigError(f"search.{key}: MOASHA early stopping was retired (measured, it never paid: "
                      "docs/benchmarks.md); remove it" + ("; its budget_trials is now search.budget_trials" if budget else ""))


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: on by default, a SQLite file in ``output_dir``; any tracking URI on clusters."""

    enabled: bool = True  # record every trial in MLflow (false: the tables and plots only)
    uri: str | None = None  # an MLflow tracking URI (null: SQLite in output_dir; a server on clusters)
    experiment: str | None = None  # the MLflow experiment (null: the config's name)


@dataclass(frozen=True)
class Config:
    """A whole run: the task and its settings, pretraining, and where outputs go."""

    name: str  # the search's name: its MLflow experiment and its folder under output_dir (default mqat)
    task_name: str
    task: Any
    pretrain: PretrainConfig
    output_dir: str  # where searches write their results (default runs/<name>)
    cache_dir: str = "data"  # rendered data, FP checkpoints, sensitivity tables, keyed by content hash
    device: str = "auto"  # auto (cuda when present, else cpu), cpu or cuda[:N]
    search: SearchConfig = field(default_factory=SearchConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
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
    for key in ("modules", "units"):
        if key in data:
            raise ConfigError(f"space.{key} comes from the task's module map; remove it")
    return build(SpaceConfig, {**data, "modules": list(modules)}, "space")


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
    _refuse_retired(data.get("search"))
    search = build(SearchConfig, data.get("search"), "search", moved=MOVED)
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
