"""The retired MOASHA scheduler's decision rule, kept for the replay: non-dominated sorting on
(accuracy so far, plan compression), then crowding distance, the top 1/eta going on."""
import numpy as np
import pytest

from bench.moasha import MoashaRule, crowding, nondominated_ranks, promoted


def test_ranks_and_crowding():
    points = np.array([[0.5, 4.0], [0.4, 8.0], [0.3, 4.0], [0.2, 2.0], [0.45, 6.0]])
    assert nondominated_ranks(points).tolist() == [0, 0, 1, 2, 0]
    front = points[[0, 1, 4]]
    distance = crowding(front)
    assert np.isinf(distance[0]) and np.isinf(distance[1]) and np.isfinite(distance[2])


def test_a_dominated_trial_is_stopped_and_a_front_trial_promoted():
    rule = MoashaRule(eta=2)
    # the first eta trials pass: too few records to judge
    assert rule.promotes("a", 0, 0.50, 4.0) and rule.promotes("b", 0, 0.40, 8.0)
    # clearly dominated by a (less accurate at the same compression): stopped
    assert not rule.promotes("c", 0, 0.20, 4.0)
    # on the front (the most compressed plan): promoted, though its accuracy is the lowest
    assert rule.promotes("d", 0, 0.15, 16.0)
    # each stage keeps its own records: c is the first at stage 1
    assert rule.promotes("c", 1, 0.0, 4.0)
    assert set(rule.records[0]) == {"a", "b", "c", "d"} and set(rule.records[1]) == {"c"}


def test_the_top_fraction_follows_eta():
    records = {f"t{i}": (0.1 * i, 4.0) for i in range(9)}   # one chain: ranks are the accuracy order
    for eta, kept in ((2, 5), (3, 3)):
        assert [i for i in records if promoted(records, i, eta)] == [f"t{i}" for i in range(9 - kept, 9)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="eta >= 2"):
        MoashaRule(eta=1)


def test_ranks_match_peeling_fronts_one_by_one():
    """The sweep and the counting sort against their definition: front k is the Pareto set of
    what is left."""
    from tracking import pareto_mask

    rng = np.random.default_rng(0)
    for columns in (2, 3):
        for _ in range(20):
            points = rng.integers(0, 6, size=(int(rng.integers(1, 40)), columns)).astype(float)  # ties on purpose
            expected, left, front = np.full(len(points), -1), np.arange(len(points)), 0
            while len(left):
                mask = pareto_mask(points[left])
                expected[left[mask]] = front
                left, front = left[~mask], front + 1
            assert nondominated_ranks(points).tolist() == expected.tolist()
