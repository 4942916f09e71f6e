import itertools

import numpy as np
import pytest

from tracking import hypervolume, pareto_mask


@pytest.mark.parametrize("points, expected", [
    ([], []),
    ([(0.5, 4.0)], [True]),
    ([(0.5, 4.0), (0.4, 3.0)], [True, False]),            # dominated in both
    ([(0.5, 4.0), (0.5, 3.0)], [True, False]),            # tie in one, worse in the other
    ([(0.5, 4.0), (0.4, 8.0)], [True, True]),             # a trade-off
    ([(0.5, 4.0), (0.5, 4.0)], [True, True]),             # duplicates both stay
    ([(0.5, 4.0), (0.5, 4.0), (0.6, 4.0)], [False, False, True]),
    ([(0.3, 12.0), (0.5, 4.0), (0.4, 8.0), (0.2, 8.0)], [True, True, True, False]),
])
def test_dominance_truth_table(points, expected):
    assert pareto_mask(points).tolist() == expected


def _brute_force_hv(points, ref):
    """Area by counting grid cells dominated by some point (exact: cells align with the lattice)."""
    pts = np.asarray(points, dtype=float)
    xs = np.linspace(ref[0], 1.0, 401)     # cells of 1/400; points lie on multiples of 1/40
    ys = np.linspace(ref[1], 16.0, 601)    # cells of 1/40; points lie on multiples of 1/2
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    covered = ((pts[:, 0][:, None, None] >= cx[None, :, None]) &
               (pts[:, 1][:, None, None] >= cy[None, None, :])).any(0)
    return covered.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])


@pytest.mark.parametrize("seed", range(20))
def test_hypervolume_matches_brute_force_on_random_points(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 12)
    # points on the lattice, with ties and duplicates on purpose
    points = np.stack([rng.integers(0, 41, n) / 40, 1 + rng.integers(0, 31, n) / 2], 1)
    points = np.concatenate([points, points[: n // 3]])
    ref = (0.0, 1.0)
    assert hypervolume(points, ref) == pytest.approx(_brute_force_hv(points, ref), abs=1e-9)


def test_hypervolume_ignores_points_below_the_reference_and_is_monotone():
    assert hypervolume([(0.5, 0.5)]) == 0.0
    assert hypervolume([(0.5, 4.0)]) == pytest.approx(0.5 * 3.0)
    assert hypervolume([(0.5, 4.0), (0.4, 8.0)]) == pytest.approx(0.5 * 3 + 0.4 * 4)
    base = [(0.5, 4.0), (0.4, 8.0)]
    for extra in itertools.product([0.1, 0.45, 0.6], [2.0, 6.0, 10.0]):
        assert hypervolume(base + [extra]) >= hypervolume(base)


def _brute_force_hv_3d(points, ref, top):
    """Volume by counting lattice cells (of 1/4 per axis) that some point dominates."""
    axes = [np.arange(r, t, 0.25) + 0.125 for r, t in zip(ref, top)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    covered = (np.asarray(points)[:, None, :] >= grid[None]).all(-1).any(0)
    return covered.sum() * 0.25 ** 3


@pytest.mark.parametrize("seed", range(10))
def test_three_objective_hypervolume_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 9)
    ref = (0.0, 1.0, -8.0)                       # a minimised objective enters negated
    points = np.stack([rng.integers(0, 9, n) / 4, 1 + rng.integers(0, 13, n) / 4, -rng.integers(0, 33, n) / 4], 1)
    points = np.concatenate([points, points[: n // 2]])
    expected = _brute_force_hv_3d(points, ref, (2.0, 4.0, 0.0))
    assert hypervolume(points, ref) == pytest.approx(expected, abs=1e-9)
    # the third objective at its reference adds nothing; a front point more adds volume
    assert hypervolume([(1.0, 2.0, -8.0)], ref) == 0.0
    assert hypervolume([(1.0, 2.0, -4.0)], ref) == pytest.approx(1.0 * 1.0 * 4.0)
    assert pareto_mask([(1.0, 2.0, -4.0), (1.0, 2.0, -5.0), (0.5, 3.0, -6.0)]).tolist() == [True, False, True]
