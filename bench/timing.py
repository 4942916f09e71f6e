"""Timing helpers: candidates measured in interleaved rounds, so drift hits all of them alike."""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping

from mqat._latency import in_turns


def interleaved(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 15,
                warmup: int = 2, burst: int = 1) -> dict[str, float]:
    """Median seconds per call of each candidate, run in turn A, B, C, A, B, C, ... With
    ``burst`` > 1 a turn is one untimed call (it brings back into the caches what the other
    candidates' turns pushed out) and ``burst`` timed ones (``mqat._latency.in_turns``)."""
    samples = in_turns(list(candidates.values()), turns=rounds, burst=burst, warmup=warmup)
    return {name: statistics.median(values) for name, values in zip(candidates, samples)}


def row(section: str, what: str, seconds: float | None, *, baseline: str | None = None,
        ratio: float | None = None, goal: str | None = None, met: bool | None = None,
        **extra) -> dict:
    """One line of the results table (``seconds`` may be any measured value; see ``unit``)."""
    return {"section": section, "what": what, "value": seconds, "baseline": baseline,
            "ratio": ratio, "goal": goal, "met": met, **extra}
