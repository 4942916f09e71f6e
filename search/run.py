"""``run_search``: the Ray Tune search over orders, bit plans and EMA/QC settings.

The driver checks the config (``validate``), prepares the FP weights, sensitivity and ILP seeds,
then runs a ``Tuner`` whose searcher optimises ``search.objectives`` together, seeds first; after
the fit, the front is scored on the held-out test split, recorded and registered. The parts come
from ``search.parts``, Ray from ``search.ray_env``, the places from ``search.locations``.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import locations, parts, resources, storage
from .config import Config, ConfigError
from .prepare import Checked, Prepared, check, prepare, with_units


@dataclass
class SearchResult:
    """The finished search: its local directory (the table and plot), one row per trial, the
    Pareto rows, and where Tune keeps it (``path`` itself, or an object-store URI)."""

    path: Path
    rows: list[dict[str, Any]]
    prepared: Prepared | None = None
    location: str = ""
    metric: Any = None  # the task's Metric: how ``accuracy`` reads
    budget_spent: bool = False  # ended by ``search.budget_trials``, not by an interruption

    @property
    def front(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("pareto")]


def validate(config: Config, *, num_samples: int | None = None, resume: bool = False,
             progress: bool = False, address: str | None = None) -> tuple[Config, Checked, dict[int, str]]:
    """Everything a search checks before it writes or starts anything; ConfigError if bad.
    A cluster (``address``) is checked for resources once joined (``run_search``)."""
    if num_samples is not None:
        if num_samples < 1:
            raise ConfigError(f"the number of samples must be at least 1, but got {num_samples}")
        config = replace(config, search=replace(config.search, num_samples=num_samples))
    checked = check(config, progress=progress)
    config = with_units(config, checked)
    faults = parts.faults()
    locations.check_reachable(config)
    resources.check_writable(config)
    if not address:
        resources.check_local_resources(config)
    if resume:
        from . import tune_state

        tune_state.check(locations.latest_experiment(config))
    return config, checked, faults


@contextlib.contextmanager
def _stage_reports_without_every_objective(config: Config):
    """Tune checks that every report holds every objective; some are measured only at the end
    (latency: the stages have no export), so with one of those the check is off for this fit."""
    from tracking.objectives import of

    key = "TUNE_DISABLE_STRICT_METRIC_CHECKING"
    if all(o.every_report for o in of(config.search.objectives)):
        yield
        return
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before


def _tuner(config: Config, prepared: Prepared, trainable, location: str, callbacks: list,
           points: list[dict[str, Any]] | None):
    """A new search's Tuner: the searcher, the callbacks, the budget."""
    from ray import tune

    search = config.search
    modules = list(prepared.checked.task.module_map.names)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=parts.searcher(config, prepared, points),
                                    num_samples=search.num_samples,
                                    max_concurrent_trials=search.max_concurrent, reuse_actors=search.reuse_actors),
        run_config=tune.RunConfig(name=storage.name(location), storage_path=locations.storage_root(config),
                                  stop=parts.budget(config, modules, location),
                                  failure_config=tune.FailureConfig(max_failures=search.max_failures),
                                  # each checkpoint is followed by a snapshot of the experiment:
                                  # a driver killed at any moment loses no stage. Two kept: the
                                  # snapshot a resume reads may be one checkpoint behind (the chaos
                                  # soak saw a trial fail 25 times restoring a deleted one)
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                                  callbacks=callbacks, verbose=0))


def run_search(config: Config, *, address: str | None = None, resume: bool = False,
               num_samples: int | None = None, progress: bool = True, log=print,
               ray_temp_dir: str | None = None, points: list[dict[str, Any]] | None = None) -> SearchResult:
    """Run (or resume) the search a config describes and return its trials and front.
    ``points``: configurations of the space to run first, in place of the ILP seeds (a recorded
    benchmark's grid, plans a user already knows); the sampler suggests the rest."""
    config, checked, faults = validate(config, num_samples=num_samples, resume=resume,
                                       progress=progress, address=address)
    location = locations.latest_experiment(config) if resume else None
    prepared = prepare(config, checked, progress=progress, log=log)
    if progress:
        from .prepare import describe
        log(describe(prepared))
    if faults:
        log(f"injecting faults into trials {faults} (MQAT_INJECT_FAULTS)")

    from ray import tune

    from tracking.report import save_search_info
    from trainables.tasks import modules_to_ship

    from . import tune_state
    from .progress import ProgressPrinter
    from .ray_env import init_ray
    from .retry_reports import ReportsKeptOnRetry

    # a task's code of the user's, outside the installed packages, and what it imports beside it
    extra = type(checked.task).code_modules(config.task) if hasattr(type(checked.task), "code_modules") else ()
    shipped = modules_to_ship(config.task_name, extra)
    init_ray(address, temp_dir=ray_temp_dir, py_modules=[str(p) for p in shipped] or None)
    locations.check_shared(config)
    resources.check_cluster_resources(config)
    trainable = parts.trainable(config, prepared, faults)
    metric, units = checked.task.metric, list(checked.units_map.units)  # what the bits_* parameters name
    if location is not None:
        log(f"resuming {location}")
        path = locations.local_dir(config, location)
        table = parts.table(config, prepared, path, location)  # Tune restores its callbacks' own
        tune_state.repair(location, log=log)
        tuner = tune.Tuner.restore(location, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        location = storage.join(locations.storage_root(config), f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        path = locations.local_dir(config, location)
        save_search_info(path, prepared.seeds, prepared.fp_metrics, metric, units, config.search.objectives)
        locations.publish(path, location)
        table = parts.table(config, prepared, path, location)
        printer = ProgressPrinter(config.search.num_samples, log, metric.name, units, config.search.objectives)
        callbacks = ([printer, parts.recorder(config, prepared, table, location)] + parts.watch(config)
                     + [tune_state.StateKeeper(location), ReportsKeptOnRetry()])
        tuner = _tuner(config, prepared, trainable, location, callbacks, points)
    with _stage_reports_without_every_objective(config):
        grid = tuner.fit()
    return _after_the_fit(config, prepared, grid, table, path, location, log)


def _after_the_fit(config: Config, prepared: Prepared, grid, table, path: Path, location: str, log) -> SearchResult:
    """The trials as rows; the front scored on the test split, saved, logged and registered."""
    from tracking.report import save_test_scores
    from tracking.results import collect

    from .held_out import score_front_on_test

    task = prepared.checked.task
    modules = list(task.module_map.names)
    rows = collect(grid, prepared.seeds, task.metric.companions, list(prepared.checked.units_map.units),
                   config.search.objectives)
    checkpoints = {r["trial_id"]: result.checkpoint for result, r in zip(grid, rows)}
    score_front_on_test(grid, rows, task, log=log,
                        runtime=config.search.deploy.runtime if config.search.deploy.onnx else None)
    save_test_scores(path, rows)
    if storage.is_uri(location):  # Tune names trials by their path in the bucket: give the URI
        for r in rows:
            r["path"] = r["path"] and storage.join(location, storage.name(r["path"]))
    rows = table.write(rows)
    if config.tracking.enabled:  # MLflow a view of the final table: tags, models, test scores
        tracker = parts.tracker(config, prepared, table, location)
        tracker.log_final(rows, checkpoints)
        name = tracker.register_front(rows)
        if name:
            log(f"front models registered in MLflow as {name!r} (aliases front-1.. by compression)")
        log(f"MLflow: {tracker.ui_link()}")
    log(f"table: {table.table_path}\nplot: {table.plot_path}")
    budget = parts.budget(config, modules, location)  # a new one reads every stage the trials reported
    return SearchResult(path, rows, prepared, location, task.metric,
                        budget_spent=budget is not None and budget.used >= budget.budget)
