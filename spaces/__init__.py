"""The search space: a pure define-by-run function of an Optuna trial, and the ILP seed points."""
