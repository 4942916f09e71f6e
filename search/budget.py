"""``search.budget_trials``: end a search once it has trained as many stages as N full trials.

Compute is counted in module stages (one fine-tuning epoch budget each), so that searches can be
given the same compute whatever their ``num_samples``. QC epochs and final scoring are not counted.
A trial that has trained its last module stage when the budget runs out still finishes (its QC
and final scoring); trials running beside it may train a stage or two past the budget meanwhile,
which is counted (``used``), then are cut off as unfinished. A stage is counted once per trial
(a rerun after a lost worker trains it again, uncounted). After ``--resume`` the count starts
from the stages the search's trials already reported (their ``result.json`` files): Tune restores
this stopper as it was pickled at the start, at zero.
"""
from __future__ import annotations

import json
from pathlib import Path

from ray.tune import Stopper


class StageBudget(Stopper):
    """Ends the search once ``trials * stages_per_trial`` module stages have been reported and no
    trial that trained all of its stages still owes its final report."""

    def __init__(self, trials: float, stages_per_trial: int, experiment: str | Path | None = None):
        if trials <= 0 or stages_per_trial < 1:
            raise ValueError(f"a stage budget needs trials > 0 and stages >= 1, but got {trials} and {stages_per_trial}")
        self.budget = trials * stages_per_trial
        self.stages_per_trial = stages_per_trial
        self.experiment = experiment  # a directory: where a resumed search reads what was trained
        self.trained: set[tuple[str, int]] | None = None  # (trial, stage): read on first use
        self.owing: set[str] = set()  # trials past their last module stage, before their final report

    def __getstate__(self):  # pickled at the start (tuner.pkl): a resumed driver reads the count again
        return {**vars(self), "trained": None, "owing": set()}

    @property
    def used(self) -> int:
        return len(self._trained())

    def _trained(self) -> set[tuple[str, int]]:
        if self.trained is None:
            self.trained = set()
            for result in Path(self.experiment).glob("*/result.json") if self.experiment else ():
                reports = [json.loads(x) for x in result.read_text().splitlines() if x.strip().endswith("}")]
                for report in reports:
                    self._count(str(report.get("trial_id")), report)
        return self.trained

    def _count(self, trial_id: str, result: dict) -> None:
        stage = result.get("stage")
        if result.get("final"):
            self.owing.discard(trial_id)
        elif isinstance(stage, int) and stage < self.stages_per_trial:
            self.trained.add((trial_id, stage))
            if stage == self.stages_per_trial - 1:
                self.owing.add(trial_id)

    def __call__(self, trial_id: str, result: dict) -> bool:
        self._trained()
        self._count(trial_id, result)
        return False

    def stop_all(self) -> bool:
        # a trial that failed after its last stage owes nothing any more: wait one trial's stages at most
        return self.used >= self.budget and (not self.owing or self.used >= self.budget + self.stages_per_trial)
