"""The papers' claims read from a recorded table: on a synthetic table where the order is known
to matter (the sensitive module first best) and to beat the joint flow, the verdicts say so."""
from __future__ import annotations

import itertools

from bench import record, table_claims

SENSITIVITY = {"base_loss": 1.0, "delta": {"backbone": {"2": 1.0, "3": 0.3, "4": 0.1, "8": 0.0},
                                           "fpn": {"2": 0.5, "3": 0.1, "4": 0.05, "8": 0.0},
                                           "head": {"2": 0.4, "3": 0.2, "4": 0.02, "8": 0.0}}}


def _rows(order_effect: float):
    rows = []
    for bits in itertools.product(record.BITS, repeat=3):
        point = dict(zip(record.MODULES, bits))
        base = 0.4 - sum(SENSITIVITY["delta"][m][str(b)] for m, b in point.items()) / 10
        first = max(record.MODULES, key=lambda m: SENSITIVITY["delta"][m][str(point[m])])
        for order in table_claims.ORDERS + [record.JOINT]:
            gain = order_effect if order.startswith(f"{first}>") else 0.0
            accuracy = base + gain + (0.001 * table_claims.ORDERS.index(order) if order != record.JOINT else 0)
            rows.append({"replicate": 0, "status": "finished", "order": order, "config": f"{order} {bits}",
                         **{f"bits_{m}": b for m, b in point.items()}, "val_accuracy": accuracy,
                         "test_accuracy": accuracy, "test_accuracy_se": 0.01, "compression": 32 / min(bits)})
    return rows


def test_an_order_that_matters_is_found_and_the_sensitive_first_rule_ranks_it_best():
    rows = _rows(order_effect=0.05)
    plans = table_claims.by_plan(rows)
    assert len(plans) == 64
    claims = {c[0].split(" (")[0]: c for c in table_claims.order_claims(plans, noise=0.01)}
    assert claims["the best order"][3] == "yes"
    assert claims["the order matters more than the seed"][3] == "yes"
    rules = table_claims.rule_claims(plans, SENSITIVITY)
    assert rules[0][3] == "yes" and 3.5 - rules[0][1] <= 2      # its two orders share the first module
    beats = table_claims.beats_fp(rows, fp_test=0.5, tuned=[0.5, 0.5])
    assert [b[3] for b in beats] == ["no", "no"]


def test_an_order_that_does_not_matter_is_within_noise():
    plans = table_claims.by_plan(_rows(order_effect=0.0))
    claims = {c[0].split(" (")[0]: c for c in table_claims.order_claims(plans, noise=0.01)}
    assert claims["the order matters more than the seed"][3] == "no"
