"""The parts a search is assembled from, each built from the config and what the driver prepared:
the searcher (its sampler and space), the trainable, the stopper, the callbacks (table, MLflow,
progress, watch, state keeper)."""
from __future__ import annotations

import functools
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import storage
from .config import Config, ConfigError
from .locations import publish
from .methods import METHODS
from .prepare import Prepared


def searcher(config: Config, prepared: Prepared, points: list[dict[str, Any]] | None = None):
    """Optuna through Tune, on ``search.objectives``: ``points`` first (the ILP seeds unless
    given), then what the configured sampler suggests."""
    from ray.tune.search.optuna import OptunaSearch

    from tracking.objectives import metrics_and_modes

    first = prepared.seeds if points is None else points
    metrics, modes = metrics_and_modes(config.search.objectives)
    return OptunaSearch(space=space_function(config, prepared), metric=metrics, mode=modes,
                        points_to_evaluate=first or None, sampler=sampler(config, prepared, len(first)))


def sampler(config: Config, prepared: Prepared, seeds: int):
    """The configured Optuna sampler, with what the search knows before any trial runs."""
    from .samplers import SamplerContext, make_sampler

    checked = prepared.checked
    return make_sampler(config.search.sampler, SamplerContext(
        config.search.seed, seeds, config.search.max_concurrent, config.space, prepared.table,
        checked.weight_counts, checked.fp_weights))


def space_function(config: Config, prepared: Prepared):
    """The method's define-by-run space, each trial given its own seed from ``search.seed``."""
    from spaces import with_trial_seed

    space = METHODS[config.search.method].space(config.space, prepared.plans)
    return functools.partial(with_trial_seed, space_function=space, seed=config.search.seed)


def faults() -> dict[int, str]:
    """Faults to inject (``MQAT_INJECT_FAULTS``), checked on the driver."""
    from trainables.faults import faults_from_environment

    try:
        return faults_from_environment()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def trainable(config: Config, prepared: Prepared, faults: dict[int, str]):
    """``train_mqat`` with what every trial shares, and each trial's resources."""
    from ray import tune

    from trainables.trainable import TrialSetup, train_mqat

    search = config.search
    units = prepared.checked.units_map
    setup = TrialSetup(config.task_name, config.task, str(Path(config.cache_dir).resolve()),
                       prepared.fp_state, stage=search.stage, deploy=search.deploy, faults=faults,
                       module_map=units.to_dict() if units.groups else None)
    resources = {"cpu": search.resources.cpus_per_trial, "gpu": search.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_mqat, setup=setup), resources)


def budget(config: Config, modules: list[str], location: str):
    """The stopper that ends a search at ``search.budget_trials`` full trials' stages, or None."""
    budget_trials = config.search.budget_trials
    if budget_trials is None:
        return None
    from .budget import StageBudget

    return StageBudget(budget_trials, len(modules),
                       experiment=None if storage.is_uri(location) else location)


def watch(config: Config) -> list:
    """The callback that fails a search whose trials wait for resources too long, if asked."""
    from .watch import PendingWatch

    timeout = config.search.pending_timeout_s
    return [PendingWatch(timeout)] if timeout is not None else []


def table(config: Config, prepared: Prepared, path: Path, location: str):
    """The search's live table and plot (rewritten after every trial, copied where it lives)."""
    from tracking.live_table import LiveTable

    task = prepared.checked.task
    return LiveTable(path, metric=task.metric, modules=list(prepared.checked.units_map.units), seeds=prepared.seeds,
                     fp_accuracy=prepared.fp_metrics.get("accuracy"),
                     fp_test_accuracy=prepared.fp_metrics.get("test_accuracy"),
                     publish=functools.partial(publish, path, location), objectives=config.search.objectives)


def tracker(config: Config, prepared: Prepared, table, location: str):
    """The MLflow callback, with the search's settings, seeds, sensitivity and plans."""
    from tracking.mlflow_tracker import MLflowTracker, default_uri
    from tracking.objectives import reference

    tracking = config.tracking
    uri = tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(config.output_dir)
    params = {"method": config.search.method, "task": config.task_name,
              **flat("search", asdict(config.search)), **flat("space", asdict(config.space)),
              **flat("task", asdict(config.task)),
              "fp_accuracy": prepared.fp_metrics.get("accuracy")}
    artifacts = {"seeds": prepared.seeds, "sensitivity": prepared.table.to_dict(),
                 "plans": {f"{t:g}": p.to_dict() for t, p in prepared.plans.items()},
                 "fp_metrics": prepared.fp_metrics}
    return MLflowTracker(uri=uri, experiment=tracking.experiment or config.name, search_path=location,
                         table=table, params=params, artifacts=artifacts,
                         reference=reference(config.search.objectives, prepared.fp_metrics))


def recorder(config: Config, prepared: Prepared, table, location: str):
    """What records every ended trial: MLflow (which keeps the table too; on a thread of its own,
    so that trials never wait on the tracking server), or the table alone."""
    from tracking.background import InBackground
    from tracking.live_table import TableCallback

    return InBackground(tracker(config, prepared, table, location)) if config.tracking.enabled else TableCallback(table)


def flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Nested settings as MLflow parameters: ``search.resources.cpus_per_trial``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(flat(f"{prefix}.{key}", value) if isinstance(value, dict) else {f"{prefix}.{key}": value})
    return out
