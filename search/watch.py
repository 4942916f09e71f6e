"""A watch on trials that never start: Tune waits for resources forever, warning once a minute,
when no node can hold a trial (a node lost, a GPU taken by another job, an autoscaler that
cannot add one). After ``search.pending_timeout_s`` of that the search fails, and says why."""
from __future__ import annotations

import time

from ray.tune import Callback


class SearchStalled(RuntimeError):
    """Trials waited for resources past ``search.pending_timeout_s`` while no trial ran."""


class PendingWatch(Callback):
    """Fails the search when trials have been pending for ``timeout_s`` while none ran.

    A trial pending while others run is only queued behind them: that is progress, not a stall.
    """

    def __init__(self, timeout_s: float, clock=time.monotonic):
        self.timeout_s = timeout_s
        self.clock = clock
        self.since: float | None = None

    def setup(self, **info):
        self.since = None  # a resumed search restores this object: its clock starts anew

    def on_step_end(self, iteration, trials, **info):
        pending = [t for t in trials if t.status == "PENDING"]
        if not pending or any(t.status == "RUNNING" for t in trials):
            self.since = None
            return
        now = self.clock()
        if self.since is None:
            self.since = now
        elif now - self.since > self.timeout_s:
            raise SearchStalled(self._message(pending[0], now - self.since))

    @staticmethod
    def _message(trial, waited: float) -> str:
        need = getattr(trial.placement_group_factory, "required_resources", {}) or {}
        return (f"trial {trial.trial_id} has waited {waited:.0f} s for {need.get('CPU', 0):g} CPUs "
                f"and {need.get('GPU', 0):g} GPUs while no trial ran: no node offers them now; lower "
                "search.resources.cpus_per_trial / gpus_per_trial or add nodes, then continue with "
                "--resume (search.pending_timeout_s: null waits forever)")
