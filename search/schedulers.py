"""The early-stopping schedulers by name (``search.scheduler.name``): one mapping, read by the
config's validation and by the search that builds them. A factory returns the Tune scheduler
(or None) and the callbacks that must run first (they mark what the others read)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EarlyStopping:
    scheduler: Any = None                         # a Tune TrialScheduler; None: every trial runs out
    callbacks: list = field(default_factory=list)  # first among the search's callbacks


def _none(search, path: Path) -> EarlyStopping:
    return EarlyStopping()


def _moasha(search, path: Path) -> EarlyStopping:
    """MOASHA on the objectives a stage reports, its rungs saved in the search's directory; the
    marker gives a stopped trial's last report each objective under its own key."""
    from tracking.objectives import ranked_at_stages

    from .moasha import MOASHA, StoppedMarker

    ranked = ranked_at_stages(search.objectives)
    scheduler = MOASHA(rungs=search.scheduler.rungs, eta=search.scheduler.eta, state_dir=path,
                       metrics=[(o.stage_key, o.mode) for o in ranked])
    return EarlyStopping(scheduler, [StoppedMarker([(o.stage_key, o.key) for o in ranked if o.stage_key != o.key])])


#: name -> factory of the early stopping, from the search's settings and its directory
SCHEDULERS: dict[str, Callable[[Any, Path], EarlyStopping]] = {"none": _none, "moasha": _moasha}


def make_early_stopping(search, path: Path) -> EarlyStopping:
    return SCHEDULERS[search.scheduler.name](search, path)
