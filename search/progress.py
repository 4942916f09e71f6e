"""A concise console reporter: one line per finished trial, with the front so far."""
from __future__ import annotations

import time

from ray.tune import Callback

from spaces import describe_point
from tracking import pareto_mask
from tracking.objectives import DEFAULT, complete, extra, maximised, of


class ProgressPrinter(Callback):
    """Prints trials done / running / failed and the best front after each finished trial."""

    def __init__(self, total: int, log=print, metric_name: str = "accuracy", modules: list[str] | None = None,
                 objectives: tuple[str, ...] = DEFAULT):
        self.total, self.metric_name, self.modules = total, metric_name, modules
        self.objectives = tuple(objectives)
        self.log = log
        self.points: list[dict[str, float]] = []  # the objectives of each finished trial
        self.failed = 0
        self.start = time.monotonic()
        self.restored = False

    def _status(self, trials, current=None) -> str:
        running = sum(t.status == "RUNNING" and t is not current for t in trials)
        done = len(self.points) + self.failed
        minutes = (time.monotonic() - self.start) / 60
        return f"[{done}/{self.total} done, {running} running, {self.failed} failed, {minutes:.1f} min]"

    def _front(self) -> str:
        mask = pareto_mask(maximised(self.points, self.objectives))
        front = sorted((p for p, keep in zip(self.points, mask) if keep), key=lambda p: p["compression"])
        others = extra(self.objectives)
        return " ".join(f"{p['compression']:.1f}x:{p['accuracy']:.3f}"
                        + "".join("@" + o.show(p[o.key]).replace(" ", "") for o in others) for p in front)

    def _point(self, result) -> dict[str, float] | None:
        """The objectives a finished trial reported, or None (a trial that reported no end)."""
        if not complete(result, self.objectives):
            return None
        return {o.key: float(result[o.key]) for o in of(self.objectives)}

    def _restore(self, trials, current) -> None:
        """Once, at the first event: after ``--resume`` Tune hands this callback back as it was
        pickled at the start, so the trials that ended before the resume are counted from Tune's
        restored trials (a new search has none)."""
        if getattr(self, "restored", False):
            return
        self.restored = True
        for t in trials:
            result = t.last_result or {}
            if t is current:
                continue
            if t.status == "TERMINATED" and self._point(result) is not None:
                self.points.append(self._point(result))
            elif t.status == "ERROR":
                self.failed += 1

    def on_trial_start(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        self.log(f"{self._status(trials)} started {trial.trial_id}: {describe_point(trial.config, self.modules)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        result = trial.last_result or {}
        point = self._point(result)
        if point is not None:
            self.points.append(point)
            others = "".join(f", {o.show(point[o.key])}" for o in extra(self.objectives))
            self.log(f"{self._status(trials, trial)} {trial.trial_id}: {self.metric_name} {result['accuracy']:.3f} at "
                     f"{result['compression']:.2f}x{others} | front {self._front()}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        self.failed += 1
        from tracking.results import error_line

        reason = error_line(trial, limit=160)
        self.log(f"{self._status(trials, trial)} {trial.trial_id} failed: {reason}")

