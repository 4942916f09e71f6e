"""The searcher: Ray's ``OptunaSearch``, telling Optuna what became of a stopped trial.

When a scheduler stops a trial, Ray hands the searcher the trial's last report, and
``OptunaSearch`` tells Optuna ``COMPLETE`` whenever that report holds the objectives: a trial
stopped after its first module entered the sampler's model as a finished trial, at its
accuracy after one module. A stopped trial is told ``PRUNED`` (Optuna's own state for it), which
its samplers leave out of their model of finished trials.
"""
from __future__ import annotations

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


class Searcher(OptunaSearch):
    """``OptunaSearch`` whose trials stopped early (marked ``early_stopped``) end ``PRUNED``."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if not (result and result.get("early_stopped")) or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)
        self._ot_study.tell(self._ot_trials[trial_id], None, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)
