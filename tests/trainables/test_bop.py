import numpy as np
import pytest
import torch

from tests.trainables.bop_fixture import write_bop
from trainables.pose import PoseConfig, PoseTask
from trainables.pose.bop import BopSpec, load_bop, load_bop_object
from trainables.pose.camera import project
from trainables.pose.ply import read_ply, write_ply
from trainables.pose.satellite import satellite, satellite_mesh


@pytest.fixture(scope="module")
def bop_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bop")
    truth = write_bop(root)
    return root, truth


def test_bop_fixture_loads_with_poses_and_crops(bop_root):
    root, truth = bop_root
    spec = BopSpec(str(root), 1, size=64)
    obj = load_bop_object(spec, keypoints=8, keypoint_kind="surface")
    assert obj.diameter == pytest.approx(satellite().diameter, rel=1e-6)
    data = load_bop(spec, obj, spans=((0.55, 0.7), (0.42, 0.55), (0.32, 0.42)))
    assert len(data) == 6 and data.images.shape == (6, 3, 64, 64) and data.images.dtype == torch.uint8
    assert torch.allclose(data.R, truth["R"], atol=1e-6)
    assert torch.allclose(data.t, truth["t"], atol=1e-6)
    # the white dot drawn at the object origin lands where the new intrinsics project it
    origin = project(torch.zeros(1, 3), data.R, data.t, data.K)[:, 0]
    for image, uv in zip(data.images, origin):
        white = (image.int().sum(0) == image.int().sum(0).max()).nonzero().float().mean(0)
        assert abs(float(white[1]) + 0.5 - float(uv[0])) < 1.5
        assert abs(float(white[0]) + 0.5 - float(uv[1])) < 1.5
    # nearer objects look larger: bins follow depth
    assert data.bins[0] <= data.bins[-1]


def test_pose_task_on_bop_data(bop_root):
    root, _ = bop_root
    config = PoseConfig(source="bop", bop_path=str(root), bop_object_id=1, image_size=64,
                        keypoints=6, widths=(8, 16, 32, 64), fpn_channels=16, batch_size=4, bop_val_fraction=0.34)
    task = PoseTask(config, device="cpu", progress=False)
    assert len(task.train_data) == 3 and len(task.val_data) == 2 and len(task.data("test")) == 1
    metrics = task.evaluate(task.build_model())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["images"] == 2
    assert task.evaluate(task.build_model(), split="test")["images"] == 1


def test_a_symmetric_bop_object_is_scored_with_adds(tmp_path):
    write_bop(tmp_path, symmetric=True)
    config = PoseConfig(source="bop", bop_path=str(tmp_path), bop_object_id=1, image_size=64,
                        keypoints=6, widths=(8, 16, 32, 64), fpn_channels=16, batch_size=4, bop_val_fraction=0.34)
    task = PoseTask(config, device="cpu", progress=False)
    assert task.object.symmetric
    data = task.val_data
    # shifted by 0.15 d along x: ADD is exactly 0.15 d (wrong), while the points slide along
    # the object's faces, so the nearest true points stay close (ADD-S right)
    shift = torch.tensor([0.15 * task.object.diameter, 0.0, 0.0])
    m = task._score(data.R, data.t + shift, data)
    assert m["add_01d"] == 0.0 and m["adds_01d"] == 1.0
    assert m["accuracy"] == 1.0 and m["accuracy_is_adds"] == 1.0


def test_missing_path_and_unknown_object(bop_root, tmp_path):
    root, _ = bop_root
    with pytest.raises(ValueError, match="does not exist"):
        PoseTask(PoseConfig(source="bop", bop_path=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match=r"object id 7 is not in the BOP dataset.*\[1, 5\]"):
        PoseTask(PoseConfig(source="bop", bop_path=str(root), bop_object_id=7))
    with pytest.raises(ValueError, match="no split 'train'"):
        PoseTask(PoseConfig(source="bop", bop_path=str(root), bop_split="train"))


def test_ply_ascii_and_binary_round_trip(tmp_path):
    vertices, faces = satellite_mesh()
    write_ply(tmp_path / "a.ply", vertices, faces)
    v, f = read_ply(tmp_path / "a.ply")
    assert np.allclose(v, vertices, atol=1e-6) and (f == faces).all()
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    vert = np.zeros(len(vertices), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1")])
    vert["x"], vert["y"], vert["z"] = vertices.T
    face = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", 3)])
    face["n"], face["i"] = 3, faces
    (tmp_path / "b.ply").write_bytes(header.encode() + vert.tobytes() + face.tobytes())
    v, f = read_ply(tmp_path / "b.ply")
    assert np.allclose(v, vertices, atol=1e-6) and (f == faces).all()
