"""Scale: a 1,000-trial search through the search's own driver machinery, with a synthetic trainable.

The trainable does no training: it reports like an MQAT trial (a result per module stage with a
checkpoint-free stage report, ``plan_compression`` from its plan, then a final report), draws its
accuracy from its plan and seed, and fails in 2% of trials. Everything around it is what a real
search runs: Optuna (random sampler: TPE's cost grows with the trials and would measure Optuna),
the MOASHA scheduler, the MLflow tracker on a SQLite store with the live table and plots, the
progress printer, on a local multi-node Ray (``ray.cluster_utils.Cluster``, 3 nodes).

Measured: wall time, trials per minute, MOASHA decisions per second, the driver's resident
memory after 100 and after all trials, and the seconds the driver spent in MLflow and in the
table and plot (so that the store is shown not to be the bottleneck, or to be).
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


def run(quick: bool = False) -> list[dict]:
    from search import ray_env

    ray_env.apply()  # Ray's environment (local token auth, quiet) before Ray starts

    import optuna
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster
    from ray.tune.search.optuna import OptunaSearch

    from search.moasha import MOASHA, StoppedMarker
    from search.progress import ProgressPrinter
    from spaces import SpaceConfig, define_space, with_trial_seed
    from tracking.live_table import LiveTable
    from tracking.mlflow_tracker import MLflowTracker

    trials = 100 if quick else 1000
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
        tracker = MLflowTracker(uri=f"sqlite:///{work / 'mlflow.db'}", experiment="scale",
                                search_path=str(work / "search"), table=table, params={}, artifacts={})
        mlflow_clock, table_clock = _Clock(), _Clock()
        mlflow_clock.wrap(tracker, "on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error")
        table_clock.wrap(table, "write")
        memory = _Memory({100, trials})

        class Count(tune.Callback):
            def on_trial_complete(self, *a, **k):
                memory.ended()

            def on_trial_error(self, *a, **k):
                memory.ended()

        scheduler = MOASHA(rungs=(0, 1), eta=2, state_dir=work / "search")
        searcher = OptunaSearch(space=space, metric=["accuracy", "compression"], mode=["max", "max"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
        start = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(synthetic_trial, {"cpu": 0.5}),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=trials,
                                        max_concurrent_trials=12, reuse_actors=True),
            run_config=tune.RunConfig(name="scale", storage_path=str(work / "ray"), verbose=0,
                                      callbacks=[StoppedMarker(), ProgressPrinter(trials, lambda *_: None,
                                                                                  modules=MODULES),
                                                 tracker, Count()]))
        grid = tuner.fit()
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
    ended = len(grid)
    failed = sum(r.error is not None for r in grid)
    stopped = sum(bool((r.metrics or {}).get("early_stopped")) for r in grid)
    print(f"[bench] scale: {ended} trials ({failed} failed, {stopped} stopped) in {wall:.0f} s; "
          f"MLflow {mlflow_clock.seconds:.0f} s, table and plot {table_clock.seconds:.0f} s; "
          f"rss {memory.rss}", flush=True)
    rate = scheduler.decisions / scheduler.decision_seconds if scheduler.decision_seconds else None
    return [
        row(SECTION, f"{ended} synthetic trials on 3 Ray nodes: trials per minute", ended / wall * 60,
            note=f"{wall:.0f} s wall; {failed} failed, {stopped} stopped by MOASHA"),
        row(SECTION, "MOASHA decisions per second (in the scheduler)", rate,
            note=f"{scheduler.decisions} decisions"),
        *[row(SECTION, f"driver resident memory after {n} trials, MiB", rss) for n, rss in sorted(memory.rss.items())],
        row(SECTION, "driver seconds in MLflow callbacks", mlflow_clock.seconds,
            ratio=mlflow_clock.seconds / wall, note="ratio: share of the wall time"),
        row(SECTION, "driver seconds writing the table and plots", table_clock.seconds,
            ratio=table_clock.seconds / wall, note="ratio: share of the wall time"),
    ]


if __name__ == "__main__":  # python -m bench.scale
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for r in run():
        print(r)
