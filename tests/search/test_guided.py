"""The ILP-guided sampler: its additive model, what it proposes, and that it runs in a study."""
from __future__ import annotations

import itertools

import optuna
import pytest

from search.guided import GuidedSampler

MODULES = ("backbone", "fpn", "head")
BITS = (2, 3, 4, 8)
COUNTS = {"backbone": 900_000, "fpn": 80_000, "head": 20_000}
DROP = {"backbone": {2: 0.20, 3: 0.05, 4: 0.01, 8: 0.0}, "fpn": {2: 0.08, 3: 0.02, 4: 0.005, 8: 0.0},
        "head": {2: 0.05, 3: 0.01, 4: 0.002, 8: 0.0}}
ORDERS = [">".join(p) for p in itertools.permutations(MODULES)]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sampler(seed=0, sensitivity=None):
    sensitivity = sensitivity or {m: {b: 10 * d for b, d in row.items()} for m, row in DROP.items()}
    return GuidedSampler(sensitivity=sensitivity, weight_counts=COUNTS, fp_weights=0, bits=BITS, orders=ORDERS,
                         seed=seed)


def _objective(trial):
    plan = {m: trial.suggest_categorical(f"bits_{m}", list(BITS)) for m in MODULES}
    trial.suggest_categorical("order", ORDERS)
    cf = 32 * sum(COUNTS.values()) / sum(b * COUNTS[m] for m, b in plan.items())
    return 0.4 - sum(DROP[m][b] for m, b in plan.items()), cf


def test_the_fit_recovers_additive_drops_from_finished_trials():
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(_objective, n_trials=60)
    # a prior that is wrong in shape (flat): the trials correct it
    sampler = _sampler(sensitivity={m: {b: 1.0 / b for b in BITS} for m in MODULES})
    a0, drops, _, _ = sampler.fit(study.trials)
    for m in MODULES:
        fitted = [drops[m][b] - drops[m][8] for b in BITS]
        truth = [DROP[m][b] for b in BITS]
        assert fitted == pytest.approx(truth, abs=0.02), m
    assert a0 - sum(drops[m][8] for m in MODULES) == pytest.approx(0.4, abs=0.02)


def test_it_never_proposes_a_tried_configuration_while_an_untried_one_is_left():
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=_sampler())
    study.optimize(_objective, n_trials=40)
    keys = [(t.params["order"], *(t.params[f"bits_{m}"] for m in MODULES)) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_it_finds_the_front_of_an_additive_problem_faster_than_random_search():
    from tracking.pareto import hypervolume

    def volume(sampler, trials=12):
        study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
        study.optimize(_objective, n_trials=trials)
        return hypervolume([t.values for t in study.trials])

    guided = [volume(_sampler(seed)) for seed in range(3)]
    random = [volume(optuna.samplers.RandomSampler(seed=seed)) for seed in range(3)]
    assert min(guided) > max(random)
