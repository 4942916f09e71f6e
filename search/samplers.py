"""The searchers' samplers by name (``search.sampler``): one mapping, read by the config's
validation and by the search that builds them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler may be built from: the search's seed, its seed points and concurrency, and
    what is known before any trial runs (the space, the sensitivity table, the weight counts)."""

    seed: int
    seeds: int = 0
    concurrent: int = 1
    space: Any = None
    sensitivity: Any = None
    weight_counts: Any = None
    fp_weights: int = 0


def _tpe(c: SamplerContext):
    import optuna

    # a few random trials after the seeds, then the model takes over
    return optuna.samplers.TPESampler(seed=c.seed, n_startup_trials=c.seeds + 2, multivariate=True)


def _gp(c: SamplerContext):
    import optuna

    # Optuna's Gaussian-process sampler (log-EHVI with several objectives), which Optuna
    # recommends for 10 to 100 trials: this project's budgets
    return optuna.samplers.GPSampler(seed=c.seed, n_startup_trials=c.seeds + 2, warn_independent_sampling=False)


def _nsga2(c: SamplerContext):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=c.seed, population_size=max(4, c.concurrent * 2))


def _random(c: SamplerContext):
    import optuna

    return optuna.samplers.RandomSampler(seed=c.seed)


def _ilp(c: SamplerContext):
    from .guided import guided_sampler

    return guided_sampler(sensitivity=c.sensitivity, weight_counts=c.weight_counts, fp_weights=c.fp_weights,
                          space=c.space, seed=c.seed)


#: name -> factory of an Optuna sampler, from a :class:`SamplerContext`
SAMPLERS: dict[str, Callable[[SamplerContext], Any]] = {"tpe": _tpe, "gp": _gp, "nsga2": _nsga2,
                                                         "random": _random, "ilp": _ilp}


def make_sampler(name: str, context: SamplerContext):
    """The Optuna sampler ``name``, built from ``context``."""
    return SAMPLERS[name](context)
