"""``run_search``: the Ray Tune search over orders, bit plans and EMA/QC settings.

The driver checks the config, prepares the FP weights, sensitivity and ILP seeds, then runs
a ``Tuner`` whose ``OptunaSearch`` maximises accuracy and compression together, seeds first.
A local Ray (the default) binds to 127.0.0.1 with no dashboard; ``address`` joins a cluster.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import resources, storage
from .config import Config, ConfigError, first_line
from .prepare import Checked, Prepared, check, deploy_settings, prepare

# Set before Ray is imported: a quiet, loopback-only local Ray, and an experiment snapshot
# every few seconds so that a killed driver loses little.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
# Trials keep one checkpoint, and each one forces a snapshot (CheckpointConfig(num_to_keep=1) in
# run_search): frequent by design, so Tune's warning about frequent snapshots is noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Ray's tqdm relay replaces builtins.print on first use: a second search in one process could then
# no longer pickle a callback that logs with print (Tune pickles callbacks with its state)
os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
# Token auth for the local Ray this driver starts, chosen explicitly (no warning); a cluster's own
# nodes decide theirs (see _follow_the_cluster), unless the user set RAY_AUTH_MODE.
_AUTH_MODE_IS_OURS = "RAY_AUTH_MODE" not in os.environ
os.environ.setdefault("RAY_AUTH_MODE", "token")


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


def _sampler(config: Config, prepared: Prepared, seeds: int):
    """The configured Optuna sampler, with what the search knows before any trial runs."""
    from .samplers import SamplerContext, make_sampler

    checked = prepared.checked
    return make_sampler(config.search.sampler, SamplerContext(
        config.search.seed, seeds, config.search.max_concurrent, config.space, prepared.table,
        checked.weight_counts, checked.fp_weights))


def _space_function(config: Config, prepared: Prepared):
    """The method's define-by-run space, each trial given its own seed from ``search.seed``."""
    from spaces import define_space, ilp_space, uniform_space, with_trial_seed

    method = config.search.method
    if method == "uniform":
        space = functools.partial(uniform_space, space=config.space)
    elif method == "ilp-only":
        plans = {f"{t:g}x": dict(p.weight_bits) for t, p in prepared.plans.items()}
        space = functools.partial(ilp_space, space=config.space, plans=plans)
    else:
        space = functools.partial(define_space, space=config.space)
    return functools.partial(with_trial_seed, space_function=space, seed=config.search.seed)


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


def _faults() -> dict[int, str]:
    """Faults to inject (``MQAT_INJECT_FAULTS``), checked on the driver."""
    from trainables.faults import faults_from_environment

    try:
        return faults_from_environment()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _trainable(config: Config, prepared: Prepared, faults: dict[int, str]):
    from ray import tune

    from trainables.trainable import TrialSetup, train_mqat

    search = config.search
    setup = TrialSetup(config.task_name, config.task, str(Path(config.cache_dir).resolve()),
                       prepared.fp_state, search.images_per_epoch, search.stage_eval_images,
                       calibration_batches=search.calibration_batches, bn_batches=search.bn_batches,
                       faults=faults, deploy=deploy_settings(config))
    resources = {"cpu": config.search.cpus_per_trial, "gpu": config.search.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_mqat, setup=setup), resources)


def _scheduler(config: Config, path: Path):
    """MOASHA (``search.scheduler: moasha``), its rungs saved in the search's directory; or None."""
    if config.search.scheduler != "moasha":
        return None
    from tracking.objectives import ranked_at_stages

    from .scheduler import MOASHA

    metrics = [(o.stage_key, o.mode) for o in ranked_at_stages(config.search.objectives)]
    return MOASHA(rungs=config.search.moasha_rungs, eta=config.search.moasha_eta, state_dir=path, metrics=metrics)


def _early_stopping_marker(config: Config) -> list:
    """The callback that marks a stopped trial's last report (first: the others read the mark)."""
    if config.search.scheduler != "moasha":
        return []
    from tracking.objectives import ranked_at_stages

    from .scheduler import StoppedMarker

    renamed = [(o.stage_key, o.key) for o in ranked_at_stages(config.search.objectives) if o.stage_key != o.key]
    return [StoppedMarker(renamed)]


def _budget(config: Config, modules: list[str], location: str):
    """The stopper that ends a search at ``search.budget_trials`` full trials' stages, or None."""
    if config.search.budget_trials is None:
        return None
    from .budget import StageBudget

    return StageBudget(config.search.budget_trials, len(modules),
                       experiment=None if storage.is_uri(location) else location)


def _watch(config: Config) -> list:
    """The callback that fails a search whose trials wait for resources too long, if asked."""
    from .watch import PendingWatch

    timeout = config.search.pending_timeout_s
    return [PendingWatch(timeout)] if timeout is not None else []


def publish(path: Path, location: str) -> None:
    """Copy the driver's files of a search into its object-store location (none for a directory)."""
    from tracking.report import DRIVER_FILES

    if storage.is_uri(location):
        storage.upload([path / name for name in DRIVER_FILES], location)


def _table(config: Config, prepared: Prepared, path: Path, location: str):
    """The search's live table and plot (rewritten after every trial, copied where it lives)."""
    from tracking.live_table import LiveTable

    task = prepared.checked.task
    return LiveTable(path, metric=task.metric, modules=list(task.module_map.names), seeds=prepared.seeds,
                     fp_accuracy=prepared.fp_metrics.get("accuracy"),
                     fp_test_accuracy=prepared.fp_metrics.get("test_accuracy"),
                     publish=functools.partial(publish, path, location), objectives=config.search.objectives)


def _tracker(config: Config, prepared: Prepared, table, location: str):
    """The MLflow callback, with the search's settings, seeds, sensitivity and plans."""
    from dataclasses import asdict

    from tracking.mlflow_tracker import MLflowTracker, default_uri
    from tracking.objectives import reference

    tracking = config.tracking
    uri = tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(config.output_dir)
    params = {"method": config.search.method, "task": config.task_name,
              **{f"search.{k}": v for k, v in asdict(config.search).items()},
              **{f"space.{k}": v for k, v in asdict(config.space).items()},
              **{f"task.{k}": v for k, v in asdict(config.task).items()},
              "fp_accuracy": prepared.fp_metrics.get("accuracy")}
    artifacts = {"seeds": prepared.seeds, "sensitivity": prepared.table.to_dict(),
                 "plans": {f"{t:g}": p.to_dict() for t, p in prepared.plans.items()},
                 "fp_metrics": prepared.fp_metrics}
    return MLflowTracker(uri=uri, experiment=tracking.experiment or config.name, search_path=location,
                         table=table, params=params, artifacts=artifacts,
                         reference=reference(config.search.objectives, prepared.fp_metrics))


def _follow_the_cluster() -> None:
    """Joining a cluster, drop the token mode this module chose for a local Ray: Ray's own rule
    for joining then applies (``auto`` on a node that holds a token: token; an explicit address:
    as RAY_AUTH_MODE says). A driver in token mode joins a cluster without it, and then its trial
    actors die without a word (the nodes call back into the driver without a token)."""
    if _AUTH_MODE_IS_OURS and os.environ.get("RAY_AUTH_MODE") == "token":
        from ray._raylet import Config

        del os.environ["RAY_AUTH_MODE"]
        Config.initialize("")  # Ray caches the mode; it rereads it the same way when it sets it


def init_ray(address: str | None, *, temp_dir: str | None = None, num_cpus: int | None = None,
             py_modules: list[str] | None = None) -> None:
    """Join ``address``, or start a small local Ray on 127.0.0.1 without a dashboard.
    ``py_modules`` (files or package folders) are shipped to every worker (a user's task).

    Workers' output reaches the driver (``log_to_driver``), prefixed with the trial's process:
    trials print nothing of their own, so what comes is what a user must see, such as a
    warning that the LSQ kernel fell back to torch ops. Ray folds repeats across workers."""
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"py_modules": py_modules} if py_modules else None
    if address:
        _follow_the_cluster()
        try:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        except (ray.exceptions.AuthenticationError, ConnectionError) as err:
            raise ConfigError(
                f"cannot join the Ray cluster at {address} ({first_line(err)}): no cluster answers there, "
                "or it asks for a token this driver did not give: set RAY_AUTH_MODE=token with the "
                "cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN), as the nodes cluster.yaml starts have it") from None
        return
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True,
             object_store_memory=512 * 1024**2, _temp_dir=temp_dir, _node_ip_address="127.0.0.1",
             runtime_env=runtime_env)


def check_storage(config: Config) -> None:
    """Refuse a multi-node cluster with results on this machine's own disk (workers could not
    write there, and the driver could not read their checkpoints)."""
    import ray

    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if nodes > 1 and not (config.search.shared_storage or storage.is_uri(storage_root(config))):
        raise ConfigError(
            f"search.storage_path {storage_root(config)!r} is on this machine, but the Ray "
            f"cluster has {nodes} nodes: put it on a filesystem every node mounts and set "
            "search.shared_storage: true, or use an object store (s3://bucket/path)")


def storage_root(config: Config) -> str:
    """Where Tune keeps the searches of a config: a directory, or an object-store URI."""
    root = config.search.storage_path or str(Path(config.output_dir) / "ray")
    return root if storage.is_uri(root) else str(Path(root).resolve())


def local_dir(config: Config, location: str) -> Path:
    """Where the driver writes a search's table, plot and seeds: the search itself when it is a
    directory, else a directory of the same name under ``output_dir``, copied up after writes."""
    if not storage.is_uri(location):
        return Path(location)
    return Path(config.output_dir).resolve() / "searches" / storage.name(location)


def latest_experiment(config: Config) -> str:
    """The newest search of this config's name: exactly ``<name>-YYYYmmdd-HHMMSS``, so config
    ``quickstart`` never resumes ``quickstart-gpu``'s searches."""
    root = storage_root(config)
    try:
        runs = storage.children(root, prefix=f"{config.name}-")
    except OSError as err:
        raise ConfigError(f"cannot read search.storage_path {root!r}: {first_line(err)}") from None
    own = re.compile(re.escape(config.name) + r"-\d{8}-\d{6}")
    runs = [run for run in runs if own.fullmatch(run)]
    if not runs:
        raise ConfigError(f"nothing to resume: no search of {config.name!r} under {root}")
    return storage.join(root, runs[-1])  # names end in their start time, so the last is the latest


def _check_reachable(config: Config) -> None:
    """An object store is opened before anything runs: a wrong bucket, endpoint or credential
    is one line now, not a failed trial later."""
    root = storage_root(config)
    if storage.is_uri(root):
        try:
            storage.check_reachable(root)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot reach search.storage_path {root!r}: {first_line(err)}") from None


def validate(config: Config, *, num_samples: int | None = None, resume: bool = False,
             progress: bool = False, address: str | None = None) -> tuple[Config, Checked, dict[int, str]]:
    """Everything a search checks before it writes or starts anything; ConfigError if bad.
    A cluster (``address``) is checked for resources once joined (``run_search``)."""
    if num_samples is not None:
        if num_samples < 1:
            raise ConfigError(f"the number of samples must be at least 1, but got {num_samples}")
        config = replace(config, search=replace(config.search, num_samples=num_samples))
    checked = check(config, progress=progress)
    faults = _faults()
    _check_reachable(config)
    resources.check_writable(config)
    if not address:
        resources.check_local_resources(config)
    if resume:
        from . import tune_state

        tune_state.check(latest_experiment(config))
    return config, checked, faults


def run_search(config: Config, *, address: str | None = None, resume: bool = False,
               num_samples: int | None = None, progress: bool = True, log=print,
               ray_temp_dir: str | None = None, points: list[dict[str, Any]] | None = None) -> SearchResult:
    """Run (or resume) the search a config describes and return its trials and front.
    ``points``: configurations of the space to run first, in place of the ILP seeds (a recorded
    benchmark's grid, plans a user already knows); the sampler suggests the rest."""
    config, checked, faults = validate(config, num_samples=num_samples, resume=resume,
                                       progress=progress, address=address)
    location = latest_experiment(config) if resume else None
    prepared = prepare(config, checked, progress=progress, log=log)
    if progress:
        from .prepare import describe
        log(describe(prepared))
    if faults:
        log(f"injecting faults into trials {faults} (MQAT_INJECT_FAULTS)")

    from ray import tune

    from tracking.live_table import TableCallback
    from tracking.objectives import metrics_and_modes
    from tracking.report import save_search_info, save_test_scores
    from tracking.results import collect

    from . import tune_state
    from .held_out import score_front_on_test
    from .progress import ProgressPrinter
    from .searcher import Searcher

    from trainables.tasks import module_file

    shipped = module_file(config.task_name)  # a task module of the user's, outside the installed packages
    init_ray(address, temp_dir=ray_temp_dir, py_modules=[str(shipped)] if shipped else None)
    check_storage(config)
    resources.check_cluster_resources(config)
    trainable = _trainable(config, prepared, faults)
    metric = checked.task.metric
    modules = list(checked.task.module_map.names)
    printer = ProgressPrinter(config.search.num_samples, log, metric.name, modules, config.search.objectives)
    if location is not None:
        log(f"resuming {location}")
        path = local_dir(config, location)
        table = _table(config, prepared, path, location)  # Tune restores its callbacks' own
        tune_state.repair(location, log=log)
        tuner = tune.Tuner.restore(location, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        name = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        location = storage.join(storage_root(config), name)
        path = local_dir(config, location)
        save_search_info(path, prepared.seeds, prepared.fp_metrics, metric, modules, config.search.objectives)
        publish(path, location)
        table = _table(config, prepared, path, location)
        recorder = _tracker(config, prepared, table, location) if config.tracking.enabled else TableCallback(table)
        callbacks = (_early_stopping_marker(config) + [printer, recorder] + _watch(config)
                     + [tune_state.StateKeeper(location)])
        metrics, modes = metrics_and_modes(config.search.objectives)
        first = prepared.seeds if points is None else points
        searcher = Searcher(space=_space_function(config, prepared), metric=metrics, mode=modes,
                            points_to_evaluate=first or None, sampler=_sampler(config, prepared, len(first)))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(config, path),
                                        num_samples=config.search.num_samples,
                                        max_concurrent_trials=config.search.max_concurrent,
                                        reuse_actors=config.search.reuse_actors),
            run_config=tune.RunConfig(name=name, storage_path=storage_root(config),
                                      stop=_budget(config, modules, location),
                                      failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
                                      # one checkpoint per trial, each followed by a snapshot of the
                                      # experiment: a driver killed at any moment loses no stage
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      callbacks=callbacks, verbose=0))
    with _stage_reports_without_every_objective(config):
        grid = tuner.fit()
    rows = collect(grid, prepared.seeds, metric.companions, modules, config.search.objectives)
    score_front_on_test(grid, rows, checked.task, log=log,
                        runtime=config.search.latency_runtime if config.search.onnx else None)
    save_test_scores(path, rows)
    if config.tracking.enabled:
        tracker = _tracker(config, prepared, table, location)
        tracker.log_test(rows)
        name = tracker.register_front(rows)
        if name:
            log(f"front models registered in MLflow as {name!r} (aliases front-1.. by compression)")
    if storage.is_uri(location):  # Tune names trials by their path in the bucket: give the URI
        for r in rows:
            r["path"] = r["path"] and storage.join(location, storage.name(r["path"]))
    rows = table.write(rows)
    log(f"table: {table.table_path}\nplot: {table.plot_path}")
    budget = _budget(config, modules, location)  # a new one reads every stage the trials reported
    return SearchResult(path, rows, prepared, location, metric,
                        budget_spent=budget is not None and budget.used >= budget.budget)

