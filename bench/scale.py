"""Scale: a 1,000-trial search through the search's own driver machinery, with a synthetic trainable.

The trainable does no training: it reports like an MQAT trial (a result per module stage with a
checkpoint-free stage report, ``plan_compression`` from its plan, then a final report), draws its
accuracy from its plan and seed, and fails in 2% of trials. Everything around it is what a real
search runs: Optuna (random sampler: TPE's cost grows with the trials and would measure Optuna),
the MLflow tracker on a SQLite store with the live table and plots, the progress printer, on a
local multi-node Ray (``ray.cluster_utils.Cluster``, 3 nodes).

Measured, for MLflow written in Tune's loop and on its writer thread (``tracking.background``),
one search each: wall time, trials per minute, the driver's resident memory after 100 and after
all trials, the seconds Tune's loop spent in the MLflow callback, the seconds of MLflow writes
wherever they ran, and those in the table and plot.
"""
from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

from .timing import row

SECTION = "scale"
MODULES = ["backbone", "fpn", "head"]
WEIGHTS = {"backbone": 900_000, "fpn": 60_000, "head": 40_000}


def synthetic_trial(config: dict) -> None:
    """An MQAT-shaped trial: accuracy falls with fewer bits, a little noise from the seed."""
    import random

    from ray import tune

    rng = random.Random(config["seed"])
    bits = {m: config[f"bits_{m}"] for m in MODULES}
    total = sum(WEIGHTS.values())
    plan = 32 * total / sum(bits[m] * WEIGHTS[m] for m in MODULES)
    accuracy, quantized = 0.9, {}
    fails_at = rng.randrange(len(MODULES)) if rng.random() < 0.02 else None
    for stage, module in enumerate(config["order"].split(">")):
        if stage == fails_at:
            raise RuntimeError("synthetic failure")
        quantized[module] = bits[module]
        accuracy -= 0.3 * (WEIGHTS[module] / total) * (8 - bits[module]) / 6 + rng.gauss(0, 0.01)
        so_far = 32 * total / sum(quantized.get(m, 32) * WEIGHTS[m] for m in MODULES)
        tune.report({"stage": stage, "stage_name": module, "accuracy": accuracy, "compression": so_far,
                     "plan_compression": plan, "final": False})
    tune.report({"stage": len(MODULES), "stage_name": "final", "accuracy": accuracy + rng.gauss(0, 0.005),
                 "compression": plan, "model_bytes": int(sum(bits[m] * WEIGHTS[m] for m in MODULES) / 8),
                 "final": True})


class _Clock:
    """Seconds spent inside the wrapped callback methods."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, obj, *names):
        for name in names:
            method = getattr(obj, name)

            @functools.wraps(method)
            def timed(*args, _method=method, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            setattr(obj, name, timed)


class _Memory:
    """The driver's resident memory when the 100th and the last trial end."""

    def __init__(self, marks):
        self.marks, self.seen = set(marks), 0
        self.rss: dict[int, float] = {}

    def ended(self) -> None:
        import psutil

        self.seen += 1
        if self.seen in self.marks:
            self.rss[self.seen] = psutil.Process().memory_info().rss / 2**20


#: MLflow written in Tune's loop (before) or on its writer thread (``InBackground``), into SQLite;
#: and on the writer thread over HTTP to a tracking server (PostgreSQL behind it where installed).
ARMS = ("loop", "writer", "server")


def run(quick: bool = False) -> list[dict]:
    """The same search once per arm: the share of the driver's wall time that Tune's loop spends
    in the tracker, each arm against the loop arm's."""
    from .tracking_server import tracking_server

    rows, shares = [], {}
    for arm in ARMS[:2]:
        arm_rows, shares[arm] = _search(quick, arm)
        rows += arm_rows
    with tempfile.TemporaryDirectory(prefix="bench-scale-server-") as temp, \
            tracking_server(Path(temp)) as (server, backend):
        arm_rows, shares["server"] = _search(quick, "server", uri=server.uri, backend=backend)
        rows += arm_rows
    for arm in ARMS[1:]:
        rows.append(row(SECTION, f"Tune's loop time in MLflow: {arm} arm / in the loop", shares[arm],
                        ratio=shares[arm] / shares["loop"] if shares["loop"] else None,
                        note=f"value: the {arm} arm's share of its wall time; ratio: against the loop arm's share"))
    return rows


def _search(quick: bool, arm: str, uri: str | None = None, backend: str = "sqlite") -> tuple[list[dict], float]:
    from search import ray_env

    ray_env.apply()  # Ray's environment (local token auth, quiet) before Ray starts

    import optuna
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster
    from ray.tune.search.optuna import OptunaSearch

    from search.progress import ProgressPrinter
    from spaces import SpaceConfig, define_space, with_trial_seed
    from tracking.background import InBackground
    from tracking.live_table import LiveTable
    from tracking.mlflow_tracker import MLflowTracker

    trials = 100 if quick else 1000
    background, label = arm != "loop", f"{arm} ({backend})"
    if ray.is_initialized():  # an earlier section's local Ray: this one runs on its own cluster
        ray.shutdown()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        space = functools.partial(with_trial_seed, seed=0, space_function=functools.partial(
            define_space, space=SpaceConfig(modules=tuple(MODULES))))
        table = LiveTable(work / "search", modules=MODULES)
        tracker = MLflowTracker(uri=uri or f"sqlite:///{work / 'mlflow.db'}", experiment="scale",
                                search_path=str(work / "search"), table=table, params={}, artifacts={})
        hooks = ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error", "on_experiment_end")
        mlflow_clock, loop_clock, table_clock = _Clock(), _Clock(), _Clock()
        mlflow_clock.wrap(tracker, *hooks)           # the writes themselves, wherever they run
        recorder = InBackground(tracker) if background else tracker
        loop_clock.wrap(recorder, *hooks)            # what Tune's loop waits for
        table_clock.wrap(table, "write")
        memory = _Memory({100, trials})

        class Count(tune.Callback):
            def on_trial_complete(self, *a, **k):
                memory.ended()

            def on_trial_error(self, *a, **k):
                memory.ended()

        searcher = OptunaSearch(space=space, metric=["accuracy", "compression"], mode=["max", "max"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
        start = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(synthetic_trial, {"cpu": 0.5}),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                        max_concurrent_trials=12, reuse_actors=True),
            run_config=tune.RunConfig(name="scale", storage_path=str(work / "ray"), verbose=0,
                                      callbacks=[ProgressPrinter(trials, lambda *_: None, modules=MODULES),
                                                 recorder, Count()]))
        grid = tuner.fit()
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
    ended = len(grid)
    failed = sum(r.error is not None for r in grid)
    # the end waits for the writer: that wait is the writer's backlog, not the loop's per-event cost
    share = loop_clock.seconds / wall
    print(f"[bench] scale, {label}: {ended} trials ({failed} failed) in {wall:.0f} s; "
          f"Tune's loop in MLflow {loop_clock.seconds:.1f} s ({share:.0%}), MLflow writes {mlflow_clock.seconds:.0f} s, "
          f"table and plot {table_clock.seconds:.0f} s; rss {memory.rss}", flush=True)
    return [
        row(SECTION, f"{label}: {ended} synthetic trials on 3 Ray nodes: trials per minute", ended / wall * 60,
            note=f"{wall:.0f} s wall; {failed} failed"),
        *[row(SECTION, f"{label}: driver resident memory after {n} trials, MiB", rss) for n, rss in sorted(memory.rss.items())],
        row(SECTION, f"{label}: seconds Tune's loop spent in the MLflow callback", loop_clock.seconds,
            ratio=share, note="ratio: share of the wall time (the end's wait for the writer included)"),
        row(SECTION, f"{label}: seconds of MLflow writes", mlflow_clock.seconds,
            ratio=mlflow_clock.seconds / wall, note="ratio: share of the wall time"),
        row(SECTION, f"{label}: driver seconds writing the table and plots", table_clock.seconds,
            ratio=table_clock.seconds / wall, note="ratio: share of the wall time"),
    ], share


if __name__ == "__main__":  # python -m bench.scale
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for r in run():
        print(r)
