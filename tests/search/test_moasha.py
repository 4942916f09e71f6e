"""MOASHA's decisions: non-dominated sorting on (accuracy so far, plan compression) at each rung."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from search.moasha import MOASHA, crowding, nondominated_ranks, promoted


def stage_result(stage, accuracy, plan_compression, final=False):
    return {"stage": stage, "accuracy": accuracy, "plan_compression": plan_compression, "final": final}


def report(scheduler, trial_id, *args, **kwargs):
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id), stage_result(*args, **kwargs))


def test_ranks_and_crowding():
    points = np.array([[0.5, 4.0], [0.4, 8.0], [0.3, 4.0], [0.2, 2.0], [0.45, 6.0]])
    assert nondominated_ranks(points).tolist() == [0, 0, 1, 2, 0]
    front = points[[0, 1, 4]]
    distance = crowding(front)
    assert np.isinf(distance[0]) and np.isinf(distance[1]) and np.isfinite(distance[2])


def test_a_dominated_trial_is_stopped_and_a_front_trial_promoted(tmp_path):
    scheduler = MOASHA(rungs=(0,), eta=2, state_dir=tmp_path)
    # the first eta trials pass: too few records to judge
    assert report(scheduler, "a", 0, 0.50, 4.0) == TrialScheduler.CONTINUE
    assert report(scheduler, "b", 0, 0.40, 8.0) == TrialScheduler.CONTINUE
    # clearly dominated by a (less accurate at the same compression): stopped
    assert report(scheduler, "c", 0, 0.20, 4.0) == TrialScheduler.STOP
    # on the front (the most compressed plan): promoted, though its accuracy is the lowest
    assert report(scheduler, "d", 0, 0.15, 16.0) == TrialScheduler.CONTINUE
    # not a rung, or the final report: never judged
    assert report(scheduler, "c", 1, 0.0, 4.0) == TrialScheduler.CONTINUE
    assert report(scheduler, "c", 0, 0.0, 4.0, final=True) == TrialScheduler.CONTINUE
    assert scheduler.decisions == 4 and scheduler.stopped == 1


def test_a_minimised_metric_ranks_low_values_first():
    """Ranked by accuracy and a minimised stage metric (BOPs of the plan): fewer is better."""
    scheduler = MOASHA(rungs=(0,), eta=2, metrics=[("accuracy", "max"), ("plan_bops", "min")])
    for trial_id, accuracy, bops in (("a", 0.5, 4e9), ("b", 0.4, 2e9)):
        assert scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id), {"stage": 0, "accuracy": accuracy,
                                                                   "plan_bops": bops}) == TrialScheduler.CONTINUE
    assert scheduler.decide("c", 0, 0.45, 8e9) == TrialScheduler.STOP      # a is better at fewer BOPs
    assert scheduler.decide("d", 0, 0.1, 1e9) == TrialScheduler.CONTINUE   # the fewest BOPs: on the front
    assert scheduler.records[0]["d"] == (0.1, -1e9)
    # a report without the ranked metric is not judged
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="e"), {"stage": 0, "accuracy": 0.0}) == TrialScheduler.CONTINUE


def test_the_top_fraction_follows_eta():
    records = {f"t{i}": (0.1 * i, 4.0) for i in range(9)}   # one chain: ranks are the accuracy order
    for eta, kept in ((2, 5), (3, 3)):
        assert [i for i in records if promoted(records, i, eta)] == [f"t{i}" for i in range(9 - kept, 9)]


def test_the_rungs_survive_a_driver_restart(tmp_path):
    first = MOASHA(rungs=(0, 1), eta=2, state_dir=tmp_path)
    for trial_id, accuracy in (("a", 0.5), ("b", 0.4)):
        report(first, trial_id, 0, accuracy, 4.0)
    saved = json.loads((tmp_path / "scheduler.json").read_text())
    assert saved["records"]["0"] == {"a": [0.5, 4.0], "b": [0.4, 4.0]}
    # a new scheduler (a resumed driver) reads them: c is the third record and dominated
    resumed = MOASHA(rungs=(0, 1), eta=2, state_dir=tmp_path)
    assert report(resumed, "c", 0, 0.3, 4.0) == TrialScheduler.STOP
    # without the saved records it would have passed as the first one
    assert report(MOASHA(rungs=(0, 1), eta=2), "c", 0, 0.3, 4.0) == TrialScheduler.CONTINUE


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="eta >= 2"):
        MOASHA(eta=1)


def test_ranks_match_peeling_fronts_one_by_one():
    """The counting sort against its definition: front k is the Pareto set of what is left."""
    from tracking import pareto_mask

    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.integers(0, 6, size=(int(rng.integers(1, 40)), 2)).astype(float)  # ties on purpose
        expected, left, front = np.full(len(points), -1), np.arange(len(points)), 0
        while len(left):
            mask = pareto_mask(points[left])
            expected[left[mask]] = front
            left, front = left[~mask], front + 1
        assert nondominated_ranks(points).tolist() == expected.tolist()
