"""Tune's trial events recorded on a thread of their own, so that the search never waits on MLflow.

Against a tracking server every write is a round trip, and while the server restarts each one
waits out MLflow's HTTP retries (minutes): run in Tune's loop, that held back every trial's
results. :class:`InBackground` hands each event to one worker thread, in order, and returns at
once. An event whose write fails because the server cannot be reached is tried again, with a
growing pause, until the server answers (up to ``retry_s``); the tracker's writes are idempotent
(a stage is logged once, a tag set again is the same tag), so a retried event writes nothing
twice. Any other error is raised in Tune's loop at the next event, as it would have been. The
search's end waits until every event is written.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ray.tune import Callback

logger = logging.getLogger(__name__)
PAUSES_S = (1, 2, 4, 8, 15)  # between tries of an event while the server is unreachable


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the tracking server could not be reached (worth waiting for), not
    that the request was refused or the tracker has a bug."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, (OSError, requests.RequestException)):
        return True
    text = str(error)
    return isinstance(error, MlflowException) and ("API request to" in text or "Max retries exceeded" in text
                                                   or "503" in text or "502" in text)


def _ended(trials) -> list:
    """The trials that have ended by now: by the time the worker records this event, others may
    have ended too, and must wait for their own events (one table row and hypervolume step each)."""
    return [t for t in trials if t.status in ("TERMINATED", "ERROR")]


class InBackground(Callback):
    """Forwards Tune's trial events to ``inner`` on a worker thread, in order (see the module)."""

    def __init__(self, inner: Callback, retry_s: float = 600.0):
        self.inner, self.retry_s = inner, retry_s
        self._queue: queue.Queue | None = None
        self._error: BaseException | None = None

    def __getstate__(self):  # Tune pickles callbacks: the thread and its queue stay here
        return {"inner": self.inner, "retry_s": self.retry_s, "_queue": None, "_error": None}

    # ---- the worker ---------------------------------------------------------------------
    def _submit(self, hook: Callable, *args, **kwargs) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._queue is None:
            self._queue = queue.Queue()
            threading.Thread(target=self._work, name="mlflow-writer", daemon=True).start()
        self._queue.put((hook, args, kwargs))

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            hook, args, kwargs = self._queue.get()
            try:
                self._run(hook, *args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to Tune's loop at the next event
                self._error = error
            finally:
                self._queue.task_done()

    def _run(self, hook: Callable, *args, **kwargs) -> None:
        deadline, tries = time.monotonic() + self.retry_s, 0
        while True:
            try:
                hook(*args, **kwargs)
                return
            except Exception as error:
                if not unreachable(error) or time.monotonic() >= deadline:
                    raise
                pause = PAUSES_S[min(tries, len(PAUSES_S) - 1)]
                logger.warning("MLflow unreachable (%s): trying %s again in %d s",
                               str(error).splitlines()[0][:200], hook.__name__, pause)
                tries += 1
                time.sleep(pause)

    def wait(self) -> None:
        """Until every event submitted so far is written; raises what failed."""
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # ---- Tune's hooks -------------------------------------------------------------------
    def setup(self, **info):
        self._submit(self.inner.setup, **info)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._submit(self.inner.on_trial_start, iteration, list(trials), trial, **info)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._submit(self.inner.on_trial_result, iteration, list(trials), trial, dict(result), **info)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._submit(self.inner.on_trial_complete, iteration, _ended(trials), trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._submit(self.inner.on_trial_error, iteration, _ended(trials), trial, **info)

    def on_experiment_end(self, trials, **info):
        self._submit(self.inner.on_experiment_end, list(trials), **info)
        self.wait()
