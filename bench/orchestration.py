"""3. Orchestration overhead of a search: the share of the trial slots' time not spent in MQAT
(training and evaluating), 1 - sum(trial MQAT seconds) / (concurrency x wall), and the seconds
this costs per trial; with Tune's actor reuse off and on."""
from __future__ import annotations

from . import searches
from .timing import row

SECTION = "orchestration"


def measure(result: dict) -> tuple[float, float]:
    slots = result["concurrency"] * result["wall"]
    n = len(result["rows"])
    return 1 - result["busy"] / slots, (slots - result["busy"]) / n


def run(quick: bool = False) -> list[dict]:
    trials = 4 if quick else 8
    searches.run(quick, "bench-warmup", num_samples=1)  # data, FP model and sensitivity cached
    rows = []
    for reuse in (False, True):
        result = searches.run(quick, f"bench-orch-reuse{int(reuse)}", num_samples=trials,
                              reuse_actors=reuse)
        share, per_trial = measure(result)
        rows.append(row(SECTION, f"{trials} trials, reuse_actors={reuse}: overhead share", share,
                        baseline="trial slot time", ratio=share, goal="< 10%", met=share < 0.10,
                        wall_s=result["wall"], busy_s=result["busy"]))
        rows.append(row(SECTION, f"{trials} trials, reuse_actors={reuse}: overhead per trial (s)",
                        per_trial, goal="< 3 s", met=per_trial < 3.0))
    return rows
