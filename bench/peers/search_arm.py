"""mqat-search as a user runs it: a real search of the task's own config (its granularity, order,
EMA, QC and BN options, the ILP-guided sampler), its front scored on the test split.

Two budgets per seed. At equal compute, ``len(targets)`` trials with the peers' targets as its ILP
seeds: every peer trains one plan per target, one full trial's images each, so the search trains
as many images (its seed plans are MQAT's, module by module, where the peers' are trained jointly).
At the config's own budget (``search.num_samples``), reported apart. A search's test scores exist
only for its front, as in every search: what chooses a model never grades it.
"""
from __future__ import annotations

import sys
import time

from .tasks import ROOT, task_data

#: the arms' names in the section's rows
EQUAL = "mqat-search (equal compute)"
DEFAULT = "mqat-search (default budget)"


def search_config(task_name: str, quick: bool, seed: int, targets, trials: int | None):
    """The task's config as a user runs it, with the search's seed, the peers' targets as its ILP
    seeds and ``trials`` trials (``None``: the config's own), tracking off."""
    from search.config import config_from_dict, merge

    data = task_data(task_name, quick)
    budget = f"{trials}t" if trials else "default"
    search = merge(data.get("search") or {}, {"seed": seed, "targets": list(targets)})
    if trials:
        search["num_samples"] = trials
    return config_from_dict({**data, "name": f"peers-{task_name}-{budget}-s{seed}", "search": search,
                             "output_dir": str(ROOT / "bench" / "runs" / "peers"), "tracking": {"enabled": False}})


def run_searches(task_name: str, quick: bool, targets, seeds) -> list[dict]:
    """Per seed, both budgets: a row per front point (``front_rows``) and one per search (its compute)."""
    from bench.searches import searched

    from .rows import front_rows
    from .tasks import context
    from .train import trained_images

    images_per_trial = trained_images(context(task_name, quick))  # the same task, stage images and modules
    rows = []
    for seed in seeds:
        for arm, trials in ((EQUAL, len(targets)), (DEFAULT, None)):
            config = search_config(task_name, quick, seed, targets, trials)
            start = time.perf_counter()
            result = searched(config, progress=False, log=lambda *_: None)
            wall = time.perf_counter() - start
            rows += front_rows(task_name, arm, seed, result.rows, wall, images_per_trial)
            print(f"[peers] {task_name}: {arm} seed {seed}: {len(result.rows)} trials in {wall:.0f} s",
                  file=sys.stderr, flush=True)
    return rows
