import math

import numpy as np
import pytest
import torch

from trainables.pose.camera import intrinsics, project, random_rotations, rotation_error_deg
from trainables.pose.keypoints import decode, targets
from trainables.pose.metrics import add_error, adds_error, mean_pose, pose_metrics
from trainables.pose.pnp import solve_pnp
from trainables.pose.satellite import farthest_points, satellite


def test_pnp_recovers_a_known_pose_from_exact_keypoints():
    g = torch.Generator().manual_seed(0)
    obj = satellite()
    K = intrinsics(128.0, 128)
    for R in random_rotations(5, g):
        t = torch.tensor([0.03, -0.02, 0.75])
        kps = project(torch.tensor(obj.keypoints, dtype=torch.float32), R, t, K)
        for ransac in (True, False):
            R_hat, t_hat = solve_pnp(obj.keypoints, kps.numpy(), K.numpy(), ransac=ransac)
            err = rotation_error_deg(torch.tensor(R_hat).unsqueeze(0), R.double().unsqueeze(0))
            assert float(err) < 0.05
            assert np.allclose(t_hat, t.numpy(), atol=1e-4)


def test_ransac_pnp_ignores_an_outlier():
    obj = satellite()
    K = intrinsics(128.0, 128)
    R = random_rotations(1, torch.Generator().manual_seed(4))[0]
    t = torch.tensor([0.0, 0.0, 0.7])
    kps = project(torch.tensor(obj.keypoints, dtype=torch.float32), R, t, K).numpy()
    kps[3] += 25.0
    _R_hat, t_hat = solve_pnp(obj.keypoints, kps, K.numpy(), ransac=True)
    assert np.allclose(t_hat, t.numpy(), atol=2e-3)


def test_add_is_zero_at_the_true_pose_and_matches_hand_computation():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.2, 0.0]])
    R = torch.eye(3).unsqueeze(0)
    t = torch.tensor([[0.0, 0.0, 1.0]])
    assert float(add_error(points, R, t, R, t)) == 0.0
    shifted = t + torch.tensor([[0.03, 0.04, 0.0]])
    assert float(add_error(points, R, shifted, R, t)) == pytest.approx(0.05)
    # 90 degrees about z: point (0.1,0,0) -> (0,0.1,0), (0,0.2,0) -> (-0.2,0,0), origin fixed
    Rz = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    hand = (0 + math.hypot(0.1, 0.1) + math.hypot(0.2, 0.2)) / 3
    assert float(add_error(points, Rz, t, R, t)) == pytest.approx(hand, rel=1e-6)
    assert float(adds_error(points, Rz, t, R, t)) <= float(add_error(points, Rz, t, R, t))


def test_pose_metrics_threshold_bins_and_auc():
    obj = satellite()
    points = torch.tensor(obj.points, dtype=torch.float32)
    n = 4
    R = torch.eye(3).expand(n, 3, 3)
    t = torch.tensor([[0.0, 0.0, 0.7]]).expand(n, 3)
    d = obj.diameter
    errors = torch.tensor([0.0, 0.05, 0.2, 0.5]) * d   # translation offsets = ADD exactly
    t_pred = t + torch.stack([errors, torch.zeros(n), torch.zeros(n)], 1)
    m = pose_metrics(points, d, R, t_pred, R, t, torch.tensor([0, 0, 1, 2]))
    assert m["accuracy"] == 0.5 and m["add_01d_near"] == 1.0 and m["add_01d_far"] == 0.0
    assert m["add_auc"] == pytest.approx((1.0 + 0.5 + 0 + 0) / 4)
    assert m["add_01d_se"] == pytest.approx(math.sqrt(0.25 / 4))


def test_a_symmetric_object_is_ranked_by_adds():
    # a ring about z: a pose turned about z looks the same, so ADD-S counts it right, ADD wrong
    angles = torch.linspace(0, 2 * math.pi, 361)[:-1]
    points = torch.stack([0.1 * angles.cos(), 0.1 * angles.sin(), torch.zeros(360)], 1)
    d = 0.2
    R = torch.eye(3).expand(2, 3, 3)
    turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    R_pred = torch.stack([turn, torch.eye(3)])
    t = torch.tensor([[0.0, 0.0, 0.7]]).expand(2, 3)
    t_pred = t + torch.tensor([[0.0, 0.0, 0.0], [0.5 * d, 0.0, 0.0]])   # 2nd: truly wrong
    bins = torch.tensor([0, 1])
    m = pose_metrics(points, d, R_pred, t_pred, R, t, bins, symmetric=True)
    assert m["add_01d"] == 0.0 and m["adds_01d"] == 0.5
    assert m["accuracy"] == 0.5 and m["accuracy_is_adds"] == 1.0
    assert m["accuracy_se"] == pytest.approx(m["adds_01d_se"]) and m["accuracy_auc"] == m["adds_auc"]
    assert m["adds_01d_near"] == 1.0 and m["add_01d_near"] == 0.0
    plain = pose_metrics(points, d, R_pred, t_pred, R, t, bins)
    assert plain["accuracy"] == 0.0 and plain["accuracy_is_adds"] == 0.0
    assert plain["accuracy_auc"] == plain["add_auc"] and plain["adds_01d"] == 0.5


def test_mean_pose_is_a_rotation():
    R = random_rotations(50, torch.Generator().manual_seed(0))
    mean_R, _ = mean_pose(R, torch.zeros(50, 3))
    assert torch.allclose(mean_R @ mean_R.T, torch.eye(3), atol=1e-5)
    assert float(torch.det(mean_R)) == pytest.approx(1.0, abs=1e-5)


def test_heatmap_targets_decode_back_to_the_keypoints():
    kps = torch.tensor([[[10.3, 20.7], [33.0, 5.2], [60.1, 60.9]]])
    heat, index, offset, valid = targets(kps, grid=16)
    assert valid.all() and heat.max() == 1.0
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    offsets = torch.zeros(1, 6, 16, 16)
    offsets.view(1, 3, 2, 256).scatter_(3, index[:, :, None, None].expand(-1, -1, 2, 1),
                                        offset.unsqueeze(-1))
    decoded, scores = decode(logits, offsets)
    assert torch.allclose(decoded, kps, atol=1e-4)
    assert (scores > 0.99).all()


def test_farthest_points_are_spread():
    pts = np.random.default_rng(0).random((500, 3))
    chosen = farthest_points(pts, 8)
    gaps = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(8) * 9
    assert gaps.min() > 0.2
