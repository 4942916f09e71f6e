"""A concise console reporter: one line per finished trial, with the front so far."""
from __future__ import annotations

import time

from ray.tune import Callback

from tracking import pareto_mask


class ProgressPrinter(Callback):
    """Prints trials done / running / failed and the best front after each finished trial."""

    def __init__(self, total: int, log=print):
        self.total = total
        self.log = log
        self.points: list[tuple[float, float]] = []
        self.failed = 0
        self.start = time.monotonic()
        self.restored = False

    def _status(self, trials, current=None) -> str:
        running = sum(t.status == "RUNNING" and t is not current for t in trials)
        done = len(self.points) + self.failed
        minutes = (time.monotonic() - self.start) / 60
        return f"[{done}/{self.total} done, {running} running, {self.failed} failed, {minutes:.1f} min]"

    def _front(self) -> str:
        mask = pareto_mask(self.points)
        front = sorted(p for p, keep in zip(self.points, mask) if keep)
        return " ".join(f"{c:.1f}x:{a:.3f}" for a, c in sorted(front, key=lambda p: p[1]))

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
            if t.status == "TERMINATED" and "accuracy" in result and "compression" in result:
                self.points.append((float(result["accuracy"]), float(result["compression"])))
            elif t.status == "ERROR":
                self.failed += 1

    def on_trial_start(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        self.log(f"{self._status(trials)} started {trial.trial_id}: {describe_config(trial.config)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        result = trial.last_result or {}
        if "accuracy" in result and "compression" in result:
            self.points.append((float(result["accuracy"]), float(result["compression"])))
            self.log(f"{self._status(trials, trial)} {trial.trial_id}: ADD-0.1d {result['accuracy']:.3f} at "
                     f"{result['compression']:.2f}x | front {self._front()}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._restore(trials, trial)
        self.failed += 1
        from tracking.mlflow_tracker import error_text

        lines = [line for line in error_text(trial).splitlines() if line.strip()]
        reason = lines[-1].strip()[:160] if lines else f"see {trial.error_file}"
        self.log(f"{self._status(trials, trial)} {trial.trial_id} failed: {reason}")


def describe_config(config: dict) -> str:
    """A trial's plan in a few words: order, bits per module, EMA and QC."""
    bits = "-".join(str(v) for k, v in sorted(config.items()) if k.startswith("bits_"))
    parts = [config.get("order", "?"), f"W[{bits}]"]
    if config.get("ema"):
        parts.append(f"ema {config.get('ema_decay', 0):.4g}")
    if config.get("qc"):
        parts.append(f"qc {config.get('qc_lr', 0):.2g}")
    return " ".join(parts)
