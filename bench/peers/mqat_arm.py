"""The mqat-search arm, the simplest one at equal compute: the project's own sensitivity table at
layer granularity and its ILP, one plan per target, as a search's seed points are made (but every
layer a unit of its own, as the peers see the network). Timed from the FP model: the sensitivity
is measured again here, never read from the search's cache."""
from __future__ import annotations

import time

ARM = "mqat-ilp"


def choose(ctx, targets) -> dict:
    """``{"plans": {target: {"bits": {layer: bits}, "setting": ...}}, "choose_s": seconds}``, as a peer
    worker's result reads."""
    import mqat
    from search.prepare import TARGET_WINDOW, weight_counts

    config, task = ctx.config, ctx.task
    model = task.build_model()
    model.load_state_dict(ctx.fp_state)
    start = time.perf_counter()
    table = mqat.sensitivity(model, ctx.units_map, loss_fn=task.loss_fn,
                             batches=task.sensitivity_batches(config.search.sensitivity_batches),
                             bits=tuple(config.space.weight_bits), act_bits=config.space.top_act_bits)
    counts, fp_weights = weight_counts(model, ctx.units_map)
    plans = mqat.solve_bit_plans(table, counts, targets=list(targets), fp_weights=fp_weights,
                                 choices=list(config.space.weight_bits), act_bits=config.space.top_act_bits,
                                 window=TARGET_WINDOW)
    seconds = time.perf_counter() - start
    by_layer = {t: {"bits": {name: plan.weight_bits[ctx.units_map.unit_of(name)] for name in ctx.layers},
                    "setting": {"window": TARGET_WINDOW}} for t, plan in plans.items()}
    return {"plans": by_layer, "choose_s": round(seconds, 2), "version": "sensitivity table + ILP"}
