"""4. Search quality: the hypervolume of the front found with an equal budget of trials, over
several seeds: the mqat search (ILP seeds, then TPE over order, bits, EMA and QC) against random
search of the same space, the uniform LSQ sweep and the ILP plans alone."""
from __future__ import annotations

import statistics

from tracking.pareto import REFERENCE, hypervolume

from . import searches
from .timing import row

SECTION = "search quality"
METHODS = {"mqat": {"method": "mqat"},
           "random": {"method": "mqat", "sampler": "random", "ilp_seeds": False},
           "uniform": {"method": "uniform"},
           "ilp-only": {"method": "ilp-only"}}


def _hypervolume(rows: list[dict]) -> float:
    points = [(r["accuracy"], r["compression"]) for r in rows if r["accuracy"] is not None]
    return hypervolume(points, REFERENCE) if points else 0.0


def run(quick: bool = False) -> list[dict]:
    seeds = [0] if quick else [0, 1, 2]
    trials = 4 if quick else 6
    volumes: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in seeds:
        for method, settings in METHODS.items():
            result = searches.run(quick, f"bench-{method}-{seed}", num_samples=trials, seed=seed,
                                  reuse_actors=True, **settings)
            volumes[method].append(_hypervolume(result["rows"]))
    rows = []
    best_baseline = max(statistics.mean(v) for m, v in volumes.items() if m != "mqat")
    reference = statistics.mean(volumes["mqat"])
    for method, values in volumes.items():
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        goal = "above every baseline" if method == "mqat" else None
        rows.append(row(SECTION, f"{method}: hypervolume, {trials} trials x {len(seeds)} seeds", mean,
                        baseline="mqat", ratio=mean / reference if reference else None, goal=goal,
                        met=(mean > best_baseline) if goal else None, spread=spread,
                        values=[round(v, 4) for v in values]))
    return rows
