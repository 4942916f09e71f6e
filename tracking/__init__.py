"""MLflow runs, the Pareto front and hypervolume, Parquet tables and plots."""
from __future__ import annotations

from .pareto import REFERENCE, hypervolume, pareto_mask

__all__ = ["REFERENCE", "hypervolume", "pareto_mask"]
