"""Every arm's plans trained with every seed, two runs at a time, each a row."""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from .rows import run_row
from .train import train


def train_all(task: str, quick: bool, choices: dict[str, dict], seeds) -> list[dict]:
    """A row per (arm, target, seed), in that order."""
    jobs = [(arm, target, seed) for arm, choice in choices.items() for target in choice["plans"] for seed in seeds]
    workers = max(1, min(2, os.cpu_count() or 1))
    # spawn, not fork: earlier sections leave threads (Ray's client, torch's pool) whose locks a fork
    # would inherit held (bench/fidelity.py)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train, task, quick, choices[arm]["plans"][target]["bits"], seed): (arm, target, seed)
                   for arm, target, seed in jobs}
        start = time.perf_counter()
        for done, _ in enumerate(as_completed(futures), 1):
            print(f"[peers] {task}: {done}/{len(futures)} runs trained, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
        return [run_row(task, arm, target, seed, choices[arm], future.result())
                for future, (arm, target, seed) in futures.items()]
