"""Bit-width allocation by integer linear programming (HAWQ-V3 form, per module), with PuLP.

minimise   sum_m sum_b Omega_m(b) x_mb
subject to sum_b x_mb = 1                                   (one bit-width per module)
           sum_m sum_b b N_m x_mb <= 32 (sum_m N_m + F) / CF - 32 F   (weight budget)
           x_mb = x_nb for tied modules m, n
with F the weights kept at full precision outside the plan (e.g. first and last layer).
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence

import pulp

from ._plan import FULL_PRECISION, BitPlan, check_bits
from ._sensitivity import SensitivityTable


def _solver() -> pulp.LpSolver:
    """CBC as bundled with PuLP 3 (the project pins pulp < 4, where it is still shipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False)


def max_compression(weight_counts: Mapping[str, int], choices: Sequence[int], *,
                    fp_weights: int = 0) -> float:
    """The highest compression any plan over ``choices`` reaches: every module at the fewest bits."""
    n = sum(weight_counts.values())
    return FULL_PRECISION * (n + fp_weights) / (min(choices) * n + FULL_PRECISION * fp_weights)


def _as_table(sensitivity: SensitivityTable | Mapping) -> Mapping[str, Mapping[int, float]]:
    return sensitivity.delta if isinstance(sensitivity, SensitivityTable) else sensitivity


def _check_inputs(table, weight_counts, choices, target):
    if not choices:
        raise ValueError("choices must list at least one bit-width")
    for b in choices:
        check_bits(b, what="a bit choice")
    missing = sorted(set(weight_counts) - set(table))
    if missing:
        raise ValueError(f"the sensitivity table has no row for module(s) {missing}")
    for m in weight_counts:
        absent = [b for b in choices if b not in table[m] and b != FULL_PRECISION]
        if absent:
            raise ValueError(f"the sensitivity of {m!r} was not measured at bits {absent}")
    if not isinstance(target, (int, float)) or isinstance(target, bool) or target < 1:
        raise ValueError(f"target_compression must be a number >= 1, but got {target!r}")


def solve_bit_plan(sensitivity: SensitivityTable | Mapping[str, Mapping[int, float]],
                   weight_counts: Mapping[str, int], *, target_compression: float,
                   choices: Sequence[int] = (2, 3, 4, 6, 8), act_bits: int | Mapping[str, int] = 8,
                   fp_weights: int = 0, ties: Sequence[Sequence[str]] = (), window: float | None = None) -> BitPlan:
    """The plan of least summed sensitivity whose compression is at least ``target_compression``
    (and, with ``window``, at most ``target_compression + window`` where such a plan exists: the
    target met exactly, not overshot, when the units are fine enough to land there).

    Raises ValueError when no plan over ``choices`` reaches the target, stating the highest
    reachable compression: an infeasible budget is reported, never relaxed.

    Example::

        plan = solve_bit_plan(table, {"backbone": 600_000, "fpn": 200_000, "head": 50_000},
                              target_compression=8)
    """
    table = _as_table(sensitivity)
    choices = sorted(set(choices))
    _check_inputs(table, weight_counts, choices, target_compression)
    reachable = max_compression(weight_counts, choices, fp_weights=fp_weights)
    if target_compression > reachable * (1 + 1e-12):
        raise ValueError(
            f"target compression {target_compression:g}x is unreachable: the highest reachable "
            f"with bits {choices} is {reachable:.3f}x"
        )
    if window is not None:
        try:
            bits = _solve(table, weight_counts, choices, fp_weights, ties, target_compression,
                          target_compression + window)
            return BitPlan(weight_bits=bits, act_bits=act_bits)
        except ValueError:
            pass  # no plan within the window: the least sensitive plan above the target
    try:
        bits = _solve(table, weight_counts, choices, fp_weights, ties, target_compression, None)
    except ValueError as err:
        raise ValueError(f"no bit plan reaches {target_compression:g}x under the given ties ({err}); the "
                         f"highest reachable without ties is {reachable:.3f}x") from None
    return BitPlan(weight_bits=bits, act_bits=act_bits)


def _solve(table, weight_counts, choices, fp_weights, ties, low: float, high: float | None) -> dict[str, int]:
    """The bits of least summed sensitivity whose compression lies in ``[low, high]``."""
    modules = list(weight_counts)
    omega = {(m, b): 0.0 if b == FULL_PRECISION else float(table[m][b])
             for m in modules for b in choices}
    problem = pulp.LpProblem("mqat_bit_plan", pulp.LpMinimize)
    x = {(m, b): problem.add_variable(f"x_{i}_{b}", cat="Binary")
         for i, m in enumerate(modules) for b in choices}
    problem += pulp.lpSum(omega[k] * x[k] for k in x)
    for m in modules:
        problem += pulp.lpSum(x[m, b] for b in choices) == 1
    total = sum(weight_counts.values()) + fp_weights
    size = pulp.lpSum(b * weight_counts[m] * x[m, b] for m, b in x)
    # A relative slack of 1e-9 keeps a plan that meets the target exactly from failing on rounding.
    problem += size <= (FULL_PRECISION * total / low - FULL_PRECISION * fp_weights) * (1 + 1e-9)
    if high is not None:
        problem += size >= (FULL_PRECISION * total / high - FULL_PRECISION * fp_weights) * (1 - 1e-9)
    for group in ties:
        for a, c in itertools.pairwise(group):
            for b in choices:
                problem += x[a, b] == x[c, b]
    status = problem.solve(_solver())
    if pulp.LpStatus[status] != "Optimal":
        raise ValueError(f"solver status {pulp.LpStatus[status]}")
    return {m: next(b for b in choices if x[m, b].value() > 0.5) for m in modules}


def solve_bit_plans(sensitivity: SensitivityTable | Mapping[str, Mapping[int, float]],
                    weight_counts: Mapping[str, int], *, targets: Sequence[float],
                    **kwargs) -> dict[float, BitPlan]:
    """:func:`solve_bit_plan` for each target: ``{target: plan}``, raising on the first unreachable."""
    return {t: solve_bit_plan(sensitivity, weight_counts, target_compression=t, **kwargs)
            for t in targets}
