"""The replay of the project's searches against a recorded table, on a synthetic table whose
front is known: every configuration of the grid, accuracy falling with fewer bits."""
from __future__ import annotations

import itertools
import random

import pytest

from bench.replay import Arm, Table, replay, summarise

MODULES = ("backbone", "fpn", "head")
BITS = (2, 3, 4, 8)
COUNTS = {"backbone": 900_000, "fpn": 80_000, "head": 20_000}
DROP = {"backbone": {2: 0.20, 3: 0.05, 4: 0.01, 8: 0.0}, "fpn": {2: 0.08, 3: 0.02, 4: 0.005, 8: 0.0},
        "head": {2: 0.05, 3: 0.01, 4: 0.002, 8: 0.0}}


def synthetic_table(replicates: int = 1, noise: float = 0.0, bits=BITS) -> Table:
    rng = random.Random(0)
    rows = {}
    orders = [">".join(p) for p in itertools.permutations(MODULES)] + ["uniform"]
    for plan_bits in itertools.product(bits, repeat=3):
        plan = dict(zip(MODULES, plan_bits))
        cf = 32 * sum(COUNTS.values()) / sum(b * COUNTS[m] for m, b in plan.items())
        for order in orders:
            base = 0.4 - sum(DROP[m][b] for m, b in plan.items()) - (0.01 if order == "uniform" else 0.0)
            key = f"{order} {'-'.join(map(str, plan_bits))}"
            stages = 1 if order == "uniform" else 3
            rows[key] = [{"config": key, "order": order, **{f"bits_{m}": b for m, b in plan.items()},
                          "status": "finished", "compression": cf, "seconds": 40.0 + stages,
                          "val_accuracy": base + rng.gauss(0, noise), "test_accuracy": base + rng.gauss(0, noise),
                          "stages": [{"stage": s, "accuracy": base + 0.01 * (stages - s), "seconds": 10.0}
                                     for s in range(stages)]} for _ in range(replicates)]
    delta = {m: {str(b): 10 * v + 1e-4 / b for b, v in d.items() if b in bits} for m, d in DROP.items()}
    priors = {"sensitivity": {"base_loss": 1.0, "delta": delta}, "weight_counts": COUNTS, "fp_weights": 0}
    return Table(rows, priors, bits=tuple(bits))


def test_a_replay_is_a_seeded_search_whose_front_fraction_grows_to_at_most_one():
    table = synthetic_table()
    assert table.complete()
    curve = replay(table, Arm("tpe", "tpe"), seed=3, budget_trials=40)
    fractions = [f for _, f in curve.points]
    assert curve.trials >= 35 and fractions == sorted(fractions) and 0 < fractions[-1] <= 1 + 1e-12
    compute = [c for c, _ in curve.points]
    assert compute == sorted(compute) and compute[-1] <= 40 * 3
    assert replay(table, Arm("tpe", "tpe"), seed=3, budget_trials=40).points == curve.points   # seeded
    assert replay(table, Arm("tpe", "tpe"), seed=4, budget_trials=40).points != curve.points


def test_the_whole_grid_reaches_the_whole_front():
    """A random search long enough to try every configuration (56 on a 2- and 8-bit grid) reaches
    HV* (fraction 1)."""
    table = synthetic_table(bits=(2, 8))
    curve = replay(table, Arm("random", "random", ilp_seeds=False), seed=0, budget_trials=400)
    assert curve.points[-1][1] == pytest.approx(1.0)


def test_moasha_in_a_replay_stops_trials_and_spends_less_on_them():
    table = synthetic_table(replicates=2, noise=0.01)
    full = replay(table, Arm("tpe", "tpe"), seed=1, budget_trials=30)
    early = replay(table, Arm("tpe + moasha", "tpe", moasha=(0, 1)), seed=1, budget_trials=30)
    assert full.stopped == 0 and early.stopped > 0
    assert early.trials + early.stopped > full.trials            # more trials started for the same compute
    summary = summarise("x", [full, early])
    assert 0 <= summary["hv@24"][0] <= 1 and summary["seeds"] == 2


def test_the_ilp_guided_arm_replays_and_beats_random_search_on_an_additive_table():
    """On a table whose accuracy is additive across modules (the guided sampler's own model) it
    must do better than random search; the real table says whether that holds for MQAT."""
    table = synthetic_table(replicates=2, noise=0.01)
    guided = [replay(table, Arm("ilp", "ilp"), seed, budget_trials=12).at(36) for seed in range(3)]
    random_ = [replay(table, Arm("random", "random", ilp_seeds=False), seed, budget_trials=12).at(36)
               for seed in range(3)]
    assert sorted(guided)[1] > sorted(random_)[1]


def test_moasha_judges_a_trial_only_at_its_rungs():
    """A rung no trial reaches (the synthetic MQAT trials have three stages: 0, 1, 2) stops
    nothing: the arm replays exactly as its sampler alone; a replay that judged every stage once
    stood for the search's scheduler, which judged only at its rungs."""
    table = synthetic_table(replicates=2, noise=0.01)
    alone = replay(table, Arm("tpe", "tpe"), seed=1, budget_trials=30)
    unreached = replay(table, Arm("tpe + moasha", "tpe", moasha=(7,)), seed=1, budget_trials=30)
    assert unreached.stopped == 0 and unreached.points == alone.points
    last_only = replay(table, Arm("tpe + moasha", "tpe", moasha=(1,)), seed=1, budget_trials=30)
    assert last_only.stopped > 0
