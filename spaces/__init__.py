"""The search space: a pure define-by-run function of an Optuna trial, and the ILP seed points."""
from __future__ import annotations

from .baselines import ilp_space, ilp_targets, uniform_space
from .seeds import recommended_order, seed_point, seed_points
from .settings import UNIFORM, TrialSettings, describe_point, trial_settings, weight_bits
from .space import SEARCH, SpaceConfig, define_space, order_name, parse_order, with_trial_seed

__all__ = [
           "SEARCH",
           "UNIFORM",
           "SpaceConfig",
           "TrialSettings",
           "define_space",
           "describe_point",
           "ilp_space",
           "ilp_targets",
           "order_name",
           "parse_order",
           "recommended_order",
           "seed_point",
           "seed_points",
           "trial_settings",
           "uniform_space",
           "weight_bits",
           "with_trial_seed",
]
