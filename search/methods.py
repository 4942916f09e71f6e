"""The search methods by name (``search.method``): one mapping, read by the config's validation
and by the search that builds a method's space.

``mqat`` searches orders, bits and EMA/QC settings, one module quantized at a time, from the ILP
seeds; the baselines quantize every module at once: ``uniform`` the same bits everywhere,
``ilp-only`` the ILP's plans for targets spread over the configured range."""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    #: the define-by-run space, from the space's config and the ILP's plans by target
    space: Callable[[Any, Mapping[float, Any]], Callable]
    ilp_seeds: bool = False      # the search starts from the ILP plans (where ``search.ilp_seeds``)
    spread_targets: bool = False  # ILP targets: num_samples of them over the configured range


def _mqat(space, plans):
    from spaces import define_space

    return functools.partial(define_space, space=space)


def _uniform(space, plans):
    from spaces import uniform_space

    return functools.partial(uniform_space, space=space)


def _ilp_only(space, plans):
    from spaces import ilp_space

    named = {f"{t:g}x": dict(p.weight_bits) for t, p in plans.items()}
    return functools.partial(ilp_space, space=space, plans=named)


METHODS: dict[str, Method] = {
    "mqat": Method(_mqat, ilp_seeds=True),
    "uniform": Method(_uniform),
    "ilp-only": Method(_ilp_only, spread_targets=True),
}
