"""5. Scaling: ILP solve time and sensitivity time as modules (3 to 50) and bit choices grow,
and the driver's memory over many trivial trials."""
from __future__ import annotations

import random
import resource
import time
from pathlib import Path

import torch
from torch import nn

import mqat

from .timing import row

SECTION = "scaling"
RUNS = Path(__file__).resolve().parent / "runs"
CHOICES = {5: (2, 3, 4, 6, 8), 7: (2, 3, 4, 5, 6, 7, 8)}


def _table(modules: int, choices, rng: random.Random) -> tuple[dict, dict]:
    """A sensitivity table that falls with bits, and weight counts of varied sizes."""
    table, counts = {}, {}
    for m in range(modules):
        scale = rng.uniform(0.01, 1.0)
        table[f"m{m}"] = {b: scale * 2.0 ** (-b) * rng.uniform(0.8, 1.2) for b in choices}
        counts[f"m{m}"] = rng.randint(1_000, 500_000)
    return table, counts


def _chain(modules: int, width: int = 16) -> tuple[nn.Module, mqat.ModuleMap]:
    layers = [nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in range(modules)]
    model = nn.Sequential(*layers)
    return model, mqat.ModuleMap({f"m{i}": [f"{i}."] for i in range(modules)})


def _ilp_rows(rng: random.Random, sizes) -> list[dict]:
    rows = []
    for n_choices, choices in CHOICES.items():
        for modules in sizes:
            table, counts = _table(modules, choices, rng)
            start = time.perf_counter()
            for target in (4.0, 8.0, 12.0):
                mqat.solve_bit_plan(table, counts, target_compression=target, choices=choices)
            rows.append(row(SECTION, f"ILP, {modules} modules x {n_choices} bit choices (per solve)",
                            (time.perf_counter() - start) / 3))
    return rows


def _sensitivity_rows(sizes) -> list[dict]:
    rows = []
    x = torch.randn(16, 16, 16, 16)
    for modules in sizes:
        model, module_map = _chain(modules)
        target = model(x).detach() + 0.1
        loss = lambda m, batch: (m(batch[0]) - batch[1]).pow(2).mean()
        start = time.perf_counter()
        mqat.sensitivity(model, module_map, loss_fn=loss, batches=[(x, target)], bits=CHOICES[5])
        seconds = time.perf_counter() - start
        rows.append(row(SECTION, f"sensitivity, {modules} modules x 5 bits (one batch)", seconds,
                        per_evaluation_s=seconds / (modules * 5)))
    return rows


def _trivial_space(trial) -> dict:
    return {"x": trial.suggest_float("x", 0, 1)}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the peak, where no /proc


def _driver_memory(trials: int) -> list[dict]:
    """Driver RSS after every 100 trivial trials of a real Tune run with Optuna."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from search.ray_env import init_ray

    init_ray(None)
    marks: list[tuple[int, float]] = []

    class Memory(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            marks.append((len(marks) + 1, _rss_mib()))

    def trivial(config):
        tune.report({"accuracy": config["x"], "compression": 1.0})

    start_rss = _rss_mib()
    start = time.perf_counter()
    searcher = OptunaSearch(space=_trivial_space,
                            metric=["accuracy", "compression"], mode=["max", "max"])
    tuner = tune.Tuner(trivial, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                                            max_concurrent_trials=2, reuse_actors=True),
                       run_config=tune.RunConfig(name="bench-memory", verbose=0, callbacks=[Memory()],
                                                 storage_path=str(RUNS / "ray")))
    tuner.fit()
    seconds = time.perf_counter() - start
    shown = [(n, rss) for n, rss in marks if n in (1, 100) or n % (trials // 5) == 0]
    return [row(SECTION, f"driver RSS after {n} trivial trials (MiB)", rss,
                baseline=f"{start_rss:.0f} MiB before", ratio=rss / start_rss) for n, rss in shown] + \
        [row(SECTION, f"{trials} trivial trials: seconds per trial", seconds / trials)]


def run(quick: bool = False) -> list[dict]:
    rng = random.Random(0)
    sizes = (3, 10, 25, 50)
    return (_ilp_rows(rng, sizes) + _sensitivity_rows((3, 10) if quick else sizes)
            + _driver_memory(100 if quick else 500))
