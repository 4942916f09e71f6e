"""``python -m bench.table_claims``: the papers' claims at scale, read from the recorded table.

Over every plan of the table's main set (64 plans, six orders and the joint flow each):

* **Does the order matter?** Per plan, the best and the worst order against the joint flow
  (test accuracy, paired over the plans), the best picked by validation accuracy (as a search
  would pick it) and, for reference, by test accuracy itself (an upper bound that selection on
  the graded split inflates); and the spread of the six orders' test accuracies within a plan
  against the repeat set's spread between seeds of one configuration: does the order matter
  more than the seed?
* **Which order?** Where the plan's most sensitive module first (``spaces.seeds.sensitive_first``
  on the table's own sensitivity) and, for plans with a 2-bit FPN, the FPN first rank among the
  six orders (by test accuracy), against chance (mean rank 3.5, best in 1 of 6).
* **Can quantization beat full precision?** Configurations whose test accuracy exceeds the FP
  model's and an FP model fine-tuned with the same images and steps as a trial (three stages of
  512 training images at lr 1e-4, BN re-estimated, ``--fine-tune``: three seeds, a minute each),
  each by more than two standard errors.

A verdict is *yes* when the mean paired difference exceeds twice its standard error, *no* when it
is that far the other way, *within noise* otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from itertools import permutations
from pathlib import Path
from typing import Any

from .record import BITS, JOINT, MODULES, Paths, read_table

ORDERS = [">".join(p) for p in permutations(MODULES)]


def _mean_se(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0] if values else math.nan), math.nan
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def _verdict(mean: float, se: float) -> str:
    if mean > 2 * se:
        return "yes"
    if mean < -2 * se:
        return "no"
    return "within noise"


def by_plan(rows: list[dict[str, Any]]) -> dict[tuple[int, ...], dict[str, dict[str, Any]]]:
    """The main set's finished rows: plan bits -> order (or the joint flow) -> row."""
    plans: dict[tuple[int, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if r["replicate"] == 0 and r["status"] == "finished":
            plans[tuple(r[f"bits_{m}"] for m in MODULES)][r["order"]] = r
    return {p: orders for p, orders in plans.items() if len(orders) == len(ORDERS) + 1}


def seed_noise(rows: list[dict[str, Any]]) -> float:
    """The repeat set's noise: the mean over its configurations of the standard deviation of the
    test accuracy between their replicates (seeds)."""
    replicates: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] == "finished":
            replicates[r["config"]].append(r["test_accuracy"])
    spreads = [statistics.stdev(v) for v in replicates.values() if len(v) > 1]
    return statistics.mean(spreads) if spreads else math.nan


def order_claims(plans, noise: float) -> list[tuple[str, float, float, str]]:
    """(claim, mean difference, its standard error, verdict) about the orders."""
    best_val, best_test, worst, spread = [], [], [], []
    for orders in plans.values():
        joint = orders[JOINT]["test_accuracy"]
        ordered = [orders[o] for o in ORDERS]
        chosen = max(ordered, key=lambda r: r["val_accuracy"])
        best_val.append(chosen["test_accuracy"] - joint)
        best_test.append(max(r["test_accuracy"] for r in ordered) - joint)
        worst.append(min(r["test_accuracy"] for r in ordered) - joint)
        spread.append(statistics.stdev(r["test_accuracy"] for r in ordered))
    out = []
    for claim, values in (("the best order (picked on validation) beats the joint flow", best_val),
                          ("the best order (picked on test: an upper bound) beats the joint flow", best_test),
                          ("the worst order beats the joint flow", worst)):
        mean, se = _mean_se(values)
        out.append((claim, mean, se, _verdict(mean, se)))
    mean, se = _mean_se(spread)
    verdict = "within noise" if math.isnan(noise) else _verdict(mean - noise, se)
    out.append(((f"the order matters more than the seed (spread between orders {mean:.4f} vs between seeds "
                f"{noise:.4f})"), mean - noise, se, verdict))
    return out


def _rank(orders: dict[str, dict[str, Any]], order: str) -> int:
    """1 for the best of the six orders by test accuracy."""
    ranked = sorted(ORDERS, key=lambda o: -orders[o]["test_accuracy"])
    return ranked.index(order) + 1


def rule_claims(plans, sensitivity) -> list[tuple[str, float, float, str]]:
    """How the rules of thumb rank among the orders: mean rank against chance (3.5)."""
    import mqat
    from spaces.seeds import sensitive_first

    table = mqat.SensitivityTable.from_dict(sensitivity)
    sensitive, fpn_first = [], []
    for bits, orders in plans.items():
        plan = mqat.BitPlan(dict(zip(MODULES, bits)))
        sensitive.append(_rank(orders, ">".join(sensitive_first(plan, table))))
        if dict(zip(MODULES, bits))["fpn"] == 2:
            fpn_first.extend(_rank(orders, o) for o in ORDERS if o.startswith("fpn>"))
    out = []
    for claim, ranks in (("the most sensitive module first ranks above chance", sensitive),
                         ("with a 2-bit FPN, the FPN first ranks above chance", fpn_first)):
        mean, se = _mean_se([3.5 - r for r in ranks])
        best = sum(r == 1 for r in ranks) / len(ranks) if ranks else math.nan
        out.append((f"{claim} (mean rank {3.5 - mean:.2f} of 6; best in {best:.0%}, chance 17%)", mean, se,
                    _verdict(mean, se)))
    return out


def beats_fp(rows, fp_test: float, tuned: list[float]) -> list[tuple[str, float, float, str]]:
    """Configurations above the FP model and above FP fine-tuned as a trial, by two standard errors."""
    finished = [r for r in rows if r["replicate"] == 0 and r["status"] == "finished"]
    out = []
    for name, reference in (("the FP model", fp_test), ("FP fine-tuned as a trial", statistics.mean(tuned) if tuned else None)):
        if reference is None:
            continue
        above = [r for r in finished if r["test_accuracy"] - reference > 2 * (r["test_accuracy_se"] or 0)]
        best = max(finished, key=lambda r: r["test_accuracy"])
        out.append(((f"quantization beats {name} ({reference:.4f}): {len(above)} of {len(finished)} configurations "
                    f"by > 2 SE; the best, {best['config']} at {best['compression']:.2f}x: {best['test_accuracy']:.4f}"),
                    best["test_accuracy"] - reference, best["test_accuracy_se"], "yes" if above else "no"))
    return out


def fine_tune_fp(seeds=(0, 1, 2)) -> list[float]:
    """The FP model fine-tuned with a trial's images and steps (three stages of 512 images, lr 1e-4,
    BN re-estimated), scored on the test split, per seed."""
    import copy

    import torch

    import mqat
    from search.prepare import check, prepare

    from .record import LR, recording_config

    torch.set_num_threads(2)
    config = recording_config(Path("/tmp/table-claims"), Path(__file__).resolve().parent.parent / "data")
    prepared = prepare(config, check(config, progress=False), progress=False, log=lambda *_: None)
    task, stage = prepared.checked.task, config.search.stage
    scores = []
    for seed in seeds:
        model = task.build_model()
        model.load_state_dict(prepared.fp_state)
        for index in range(len(MODULES)):
            mqat.seed_everything(mqat.derive_seed(seed, index))
            optimizer = torch.optim.Adam(model.parameters(), lr=LR)
            model.train()
            task.train_epoch(model, optimizer, lambda: None, images=stage.images_per_epoch)
        model = mqat.reestimate_bn(copy.deepcopy(model), task.train_batches(stage.bn_batches))
        scores.append(float(task.evaluate(model, split="test")["accuracy"]))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table_claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fine-tune", action="store_true", help="also fine-tune the FP model as a trial (3 seeds)")
    args = parser.parse_args(argv)
    paths = Paths()
    rows = read_table(paths.table)
    meta = json.loads(paths.meta.read_text())
    plans = by_plan(rows)
    print(f"table: {len(rows)} rows; {len(plans)} of {len(BITS) ** len(MODULES)} plans with every order")
    tuned = fine_tune_fp() if args.fine_tune else []
    if tuned:
        print(f"FP fine-tuned as a trial, test ADD-0.1d per seed: {', '.join(f'{t:.4f}' for t in tuned)}")
    claims = (order_claims(plans, seed_noise(rows)) + rule_claims(plans, json.loads(paths.priors.read_text())["sensitivity"])
              + beats_fp(rows, meta["fp"]["test_accuracy"], tuned))
    for claim, mean, se, verdict in claims:
        print(f"{verdict:>13}  {mean:+.4f} +- {se:.4f}  {claim}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
