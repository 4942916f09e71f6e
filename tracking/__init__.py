"""MLflow runs, the Pareto front and hypervolume, Parquet tables and plots."""
