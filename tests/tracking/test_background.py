"""Trial events recorded on a worker thread: in order, retried while the server is unreachable,
a bug raised in Tune's loop, and the search's end waiting for every write."""
import threading
import time

import pytest
from ray.tune import Callback

from tracking.background import InBackground, unreachable


class Recording(Callback):
    def __init__(self, fail=()):
        self.events, self.threads, self.fail = [], set(), list(fail)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise self.fail.pop(0)
        time.sleep(0.01)
        self.events.append(result["i"])


def test_events_are_written_in_order_off_the_loop_and_the_end_waits_for_them():
    inner = Recording()
    background = InBackground(inner)
    result = {"i": 0}
    for i in range(20):
        result["i"] = i                       # Tune's dict may change after the hook returns
        background.on_trial_result(i, [], None, result)
    assert len(inner.events) < 20             # the loop did not wait for the writes
    background.on_experiment_end([])
    assert inner.events == list(range(20)) and inner.threads == {"mlflow-writer"}


def test_an_unreachable_server_is_waited_for_and_nothing_is_lost():
    inner = Recording(fail=[ConnectionRefusedError("connection refused")])
    background = InBackground(inner)
    background.on_trial_result(0, [], None, {"i": 7})
    background.on_experiment_end([])
    assert inner.events == [7]


def test_a_bug_in_the_tracker_is_raised_in_tunes_loop():
    inner = Recording(fail=[KeyError("not a connection problem")])
    background = InBackground(inner)
    background.on_trial_result(0, [], None, {"i": 1})
    with pytest.raises(KeyError):
        background.on_experiment_end([])
    assert inner.events == []


def test_what_counts_as_unreachable():
    import requests
    from mlflow.exceptions import MlflowException

    assert unreachable(requests.ConnectionError("refused"))
    assert unreachable(MlflowException("API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed "
                                       "with exception HTTPConnectionPool: Max retries exceeded"))
    assert not unreachable(MlflowException("RESOURCE_ALREADY_EXISTS"))
    assert not unreachable(ValueError("bug"))
