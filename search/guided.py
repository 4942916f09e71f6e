"""The ILP-guided sampler (``search.sampler: ilp``): a searcher that uses what the project knows
before a trial runs.

A plan's compression is exact, and a module's accuracy loss at a bit-width is roughly additive
across modules (the ILP's own assumption). So the sampler models a plan's accuracy as
``a0 - sum_m d_m(b_m)``, the drops ``d_m(b)`` starting from the sensitivity table (scaled to
accuracy by a least-squares fit) and corrected by every finished trial (ridge regression towards
that prior); then it looks at the current front (accuracy against compression) for its largest
gap, solves the ILP with the fitted drops at the compression target in that gap, and suggests that
plan with the order that has done best so far against the model (an order never tried first).
A plan tried with two orders gives way to the next best plan at the target; a plan and order
already tried is never suggested again while an untried one is left.
It suggests only the order and the bits; every other parameter is sampled independently (random).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

RIDGE = 1.0          # the prior's weight against the trials, in trials' worth of evidence
EXPLORE_ORDERS = 2   # orders a plan is tried with before the next plan at the target is
ENUMERATE = 4096     # up to this many plans, every one is scored; beyond, the ILP's at the front's gaps
NOISE_FLOOR = 1e-4   # the accuracy noise variance assumed at least (a standard error of 0.01)
REFERENCE = (0.0, 1.0)  # the hypervolume's (tracking.pareto's): no accuracy, no compression


class GuidedSampler(BaseSampler):
    """Suggests ``order`` and ``bits_<module>`` from the fitted additive model and the ILP."""

    def __init__(self, *, sensitivity: Mapping[str, Mapping[int, float]], weight_counts: Mapping[str, int],
                 fp_weights: int, bits: Sequence[int], orders: Sequence[str], seed: int | None = None,
                 startup: int = 0):
        self.modules = list(weight_counts)
        self.delta = {m: {int(b): float(v) for b, v in sensitivity[m].items()} for m in self.modules}
        self.counts, self.fp_weights = dict(weight_counts), int(fp_weights)
        self.bits, self.orders = sorted(bits), list(orders)
        self.startup = startup
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self._columns = [(m, b) for m in self.modules for b in self.bits]

    # ---- Optuna's sampler interface ------------------------------------------------------
    def infer_relative_search_space(self, study, trial) -> dict[str, Any]:
        space = {f"bits_{m}": CategoricalDistribution(self.bits) for m in self.modules}
        return {"order": CategoricalDistribution(self.orders), **space} if self.orders else space

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        planned = f"bits_{self.modules[0]}"
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values is not None and planned in t.params]
        if len(done) < self.startup:
            return {}
        others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number and planned in t.params]
        running = [t.params for t in others if t.state == TrialState.RUNNING]
        plan, order = self.suggest(done, {self._key(t.params) for t in others}, running)
        return {**({"order": order} if self.orders else {}), **{f"bits_{m}": b for m, b in plan.items()}}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    # ---- the model ------------------------------------------------------------------------
    def compression(self, plan: Mapping[str, int]) -> float:
        total = sum(self.counts.values()) + self.fp_weights
        return 32 * total / (sum(plan[m] * n for m, n in self.counts.items()) + 32 * self.fp_weights)

    def _key(self, params: Mapping[str, Any]) -> tuple:
        return (params.get("order"), *(params.get(f"bits_{m}") for m in self.modules))

    def fit(self, done) -> tuple[float, dict[str, dict[int, float]], np.ndarray, float]:
        """``a0``, the drops ``d[m][b]`` (accuracy lost by module m at b bits), their posterior
        covariance over ``self._columns`` (up to the noise) and the noise variance."""
        prior = np.array([self.delta[m][b] for m, b in self._columns])
        x = np.array([[float(t.params[f"bits_{m}"] == b) for m, b in self._columns] for t in done]).reshape(
            len(done), len(prior))
        y = np.array([t.values[0] for t in done])
        if len(done) >= 2:  # accuracy ~ a0 - k * summed sensitivity: the prior's scale
            s = x @ prior
            design = np.stack([np.ones_like(s), -s], axis=1)
            (a0, k), *_ = np.linalg.lstsq(design, y, rcond=None)
            k = max(float(k), 0.0)
        else:
            a0, k = (float(y.max()) if len(y) else 0.0), 0.0
        start = k * prior
        precision = x.T @ x + RIDGE * np.eye(len(prior))
        # ridge towards the scaled prior: d = start + (X'X + R I)^-1 X'(a0 - y - X start)
        drops = start + np.linalg.solve(precision, x.T @ (a0 - y - x @ start)) if len(done) else start
        residual = a0 - y - x @ drops
        noise = max(float(np.mean(residual ** 2)) if len(done) > 2 else 0.0, NOISE_FLOOR)
        fitted: dict[str, dict[int, float]] = {m: {} for m in self.modules}
        for (m, b), d in zip(self._columns, drops):
            fitted[m][b] = float(d)
        return float(a0), fitted, np.linalg.inv(precision), noise

    def _order_effects(self, done, a0: float, drops) -> dict[str | None, float]:
        """Each order's mean residual against the model, shrunk towards 0 by how often it was tried."""
        residuals: dict[str | None, list[float]] = {o: [] for o in self.orders or [None]}
        for t in done:
            predicted = a0 - sum(drops[m][t.params[f"bits_{m}"]] for m in self.modules)
            residuals.setdefault(t.params.get("order"), []).append(t.values[0] - predicted)
        return {o: sum(r) / (len(r) + 2) for o, r in residuals.items()}

    def suggest(self, done, tried: set, running=()) -> tuple[dict[str, int], str | None]:
        """The untried plan and order whose optimistic prediction (mean plus one standard
        deviation) adds most hypervolume to the front of the finished trials, the ``running`` ones
        counted at their predicted accuracy (so that two workers do not chase one gap); the most
        uncertain one when none is predicted to add any."""
        from tracking.pareto import hypervolume

        a0, drops, covariance, noise = self.fit(done)
        effects = self._order_effects(done, a0, drops)

        def predicted(params) -> tuple[float, float]:
            plan = {m: params[f"bits_{m}"] for m in self.modules}
            return (a0 - sum(drops[m][plan[m]] for m in self.modules) + effects.get(params.get("order"), 0.0),
                    self.compression(plan))

        front = [tuple(t.values) for t in done] + [predicted(p) for p in running]
        base = hypervolume(front, REFERENCE) if front else 0.0
        best, best_score, best_spread = None, -math.inf, -math.inf
        for plan in self._candidates(drops, done):
            x = np.array([float(plan[m] == b) for m, b in self._columns])
            spread = math.sqrt(max(float(x @ covariance @ x) * noise, 0.0))
            cf = self.compression(plan)
            for order in self.orders or [None]:
                if self._key({"order": order, **{f"bits_{m}": b for m, b in plan.items()}}) in tried:
                    continue
                accuracy, _ = predicted({"order": order, **{f"bits_{m}": b for m, b in plan.items()}})
                gain = hypervolume(front + [(accuracy + spread, cf)], REFERENCE) - base
                score = (gain, spread)
                if score > (best_score, best_spread):
                    best, best_score, best_spread = (plan, order), gain, spread
        if best is None:  # everything tried
            plan = {m: int(self._rng.choice(self.bits)) for m in self.modules}
            return plan, (str(self._rng.choice(self.orders)) if self.orders else None)
        return best

    def _candidates(self, drops, done) -> list[dict[str, int]]:
        """Every plan of a small grid; beyond ``ENUMERATE`` plans, the ILP's optimum with the fitted
        drops at the compression in the middle of each gap of the front (and past its ends)."""
        if len(self.bits) ** len(self.modules) <= ENUMERATE:
            return [dict(zip(self.modules, bits)) for bits in itertools.product(self.bits, repeat=len(self.modules))]
        import mqat

        fronts = sorted({t.values[1] for t in done})
        low = self.compression({m: max(self.bits) for m in self.modules})
        high = self.compression({m: min(self.bits) for m in self.modules})
        edges = sorted({low, *fronts, high})
        plans = []
        for a, b in itertools.pairwise(edges):
            plan = mqat.solve_bit_plan(drops, self.counts, target_compression=math.sqrt(a * b), choices=self.bits,
                                       fp_weights=self.fp_weights)
            plans.append(dict(plan.weight_bits))
        return plans


def guided_sampler(*, sensitivity, weight_counts, fp_weights: int, space, seed: int) -> GuidedSampler:
    """The sampler for a search's space (``spaces.SpaceConfig``) and sensitivity table."""
    from spaces import SEARCH

    return GuidedSampler(sensitivity=sensitivity.delta, weight_counts=weight_counts, fp_weights=fp_weights,
                         bits=space.weight_bits, orders=space.orders() if space.order == SEARCH else [], seed=seed)


