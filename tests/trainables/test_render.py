import numpy as np
import torch

from trainables.pose.camera import intrinsics, project, random_rotations, roll_matrix
from trainables.pose.render import _intersect, render
from trainables.pose.satellite import box_tensors, sample_surface, satellite


def _surface_points(count=400):
    obj = satellite()
    return torch.tensor(sample_surface(obj.vertices, obj.faces, count, seed=1), dtype=torch.float32)


def _depth_along_rays_through(points, R, t, K):
    uv = project(points, R, t, K)                                   # (B, P, 2)
    rays = torch.cat([(uv - K[:2, 2]) / K[0, 0], torch.ones(*uv.shape[:2], 1)], -1)   # z = 1
    origin = -(t.unsqueeze(1) @ R).transpose(1, 2)
    direction = R.transpose(1, 2) @ rays.transpose(1, 2)
    depth, _, _ = _intersect(origin, direction, box_tensors())
    z = (points @ R.transpose(1, 2) + t[:, None])[..., 2]
    return depth, z


def test_rays_through_projected_points_never_pass_the_surface():
    g = torch.Generator().manual_seed(0)
    K = intrinsics(128.0, 128)
    R = random_rotations(4, g)
    t = torch.tensor([[0.02, -0.01, 0.6], [0.0, 0.03, 0.8], [-0.03, 0.0, 0.7], [0.01, 0.01, 1.0]])
    depth, z = _depth_along_rays_through(_surface_points(), R, t, K)
    assert torch.isfinite(depth).all()          # every ray through a surface point hits
    assert (depth <= z + 1e-5).all()            # never behind that point


def test_unoccluded_points_are_hit_exactly_where_the_camera_projects_them():
    # With R a roll about the optical axis the body's -z face looks at the camera and
    # nothing lies in front of it: rays through its points' projections end on them.
    K = intrinsics(128.0, 128)
    angles = torch.tensor([0.0, 0.4, 2.0])
    R = roll_matrix(angles)
    t = torch.tensor([[0.0, 0.0, 0.6], [0.02, -0.03, 0.7], [-0.04, 0.01, 0.9]])
    g = torch.Generator().manual_seed(1)
    xy = (torch.rand(200, 2, generator=g) * 2 - 1) * torch.tensor([0.059, 0.054])
    face = torch.cat([xy, torch.full((200, 1), -0.08)], 1)
    depth, z = _depth_along_rays_through(face, R, t, K)
    assert torch.allclose(depth, z, atol=1e-5)


def test_rendered_object_covers_its_projection():
    K = intrinsics(128.0, 128)
    R = torch.eye(3).unsqueeze(0)
    t = torch.tensor([[0.0, 0.0, 0.6]])
    g = torch.Generator().manual_seed(3)
    image = render(R, t, K, 128, generator=g)[0]
    assert image.shape == (3, 128, 128) and 0 <= image.min() and image.max() <= 1
    # with R = I the body's -z face looks at the camera: its tint makes blue > green > red there
    centre = image[:, 58:70, 58:70].mean(dim=(1, 2))
    assert centre[2] > centre[1] > centre[0]


def test_rendering_is_deterministic_by_seed():
    K = intrinsics(128.0, 64)
    R = random_rotations(2, torch.Generator().manual_seed(0))
    t = torch.tensor([[0.0, 0.0, 0.7]] * 2)
    a = render(R, t, K, 64, generator=torch.Generator().manual_seed(5), occlusion=0.5)
    b = render(R, t, K, 64, generator=torch.Generator().manual_seed(5), occlusion=0.5)
    assert torch.equal(a, b)


def test_project_matches_opencv():
    import cv2
    g = torch.Generator().manual_seed(1)
    R = random_rotations(1, g)[0]
    t = torch.tensor([0.05, -0.02, 0.9])
    K = intrinsics(150.0, 128)
    pts = torch.randn(20, 3) * 0.1
    ours = project(pts, R, t, K)
    rvec = cv2.Rodrigues(R.double().numpy())[0]
    theirs = cv2.projectPoints(pts.double().numpy(), rvec, t.double().numpy(), K.double().numpy(), None)[0]
    assert np.allclose(ours.numpy(), theirs[:, 0], atol=1e-3)


def test_roll_augmentation_is_an_exact_camera_roll():
    from trainables.pose.augment import roll
    K = intrinsics(64.0, 64)
    angle = torch.tensor([0.7])
    R = random_rotations(1, torch.Generator().manual_seed(2))
    t = torch.tensor([[0.03, -0.02, 0.7]])
    pts = torch.tensor(satellite().keypoints, dtype=torch.float32)
    kps = project(pts, R, t, K)
    Rr = roll_matrix(angle)
    expected = project(pts, Rr @ R, (Rr @ t.unsqueeze(-1)).squeeze(-1), K)
    # one bright pixel, so the image rotation's direction is checked too
    image = torch.zeros(1, 1, 64, 64)
    u, v = kps[0, 0].long().tolist()
    image[0, 0, v, u] = 1.0
    rotated, rolled = roll(image, kps, angle)
    assert torch.allclose(rolled, expected, atol=1e-4)
    peak = rotated[0, 0].argmax()
    assert abs(int(peak % 64) + 0.5 - float(expected[0, 0, 0])) <= 1.5
    assert abs(int(peak // 64) + 0.5 - float(expected[0, 0, 1])) <= 1.5


_RENDER_HASH = """
import hashlib, torch
from trainables.pose.dataset import RenderSpec, render_dataset
data = render_dataset(RenderSpec(96, seed=3, size=64, occlusion=0.3), chunk=48, progress=False)
digest = hashlib.sha256()
for tensor in (data.images, data.R, data.t, data.bins):
    digest.update(tensor.numpy().tobytes())
print(torch.backends.cpu.get_cpu_capability(), digest.hexdigest())
"""


def test_a_data_set_renders_the_same_bytes_whatever_the_cpus_vector_kernels():
    """Rows of the recorded table compare only if every machine renders the same images: the
    renderer in torch's scalar kernels (what a CPU without AVX runs) and in this CPU's own."""
    import os
    import subprocess
    import sys

    def rendered(capability: str | None) -> tuple[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        env.update({"ATEN_CPU_CAPABILITY": capability} if capability else {})
        out = subprocess.run([sys.executable, "-c", _RENDER_HASH], env=env, capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        return tuple(out.stdout.split())  # type: ignore[return-value]

    (native, native_hash), (scalar, scalar_hash) = rendered(None), rendered("default")
    assert scalar == "DEFAULT" and native != scalar      # two kernel sets really ran
    assert native_hash == scalar_hash
