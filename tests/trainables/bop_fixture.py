"""Writes a tiny BOP-format dataset with the project's renderer (for the reader's tests)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from trainables.pose.camera import project, random_rotations
from trainables.pose.ply import write_ply
from trainables.pose.render import render
from trainables.pose.satellite import satellite, satellite_mesh

SIZE = 192


def write_bop(root: Path, *, images: int = 6, object_id: int = 1, symmetric: bool = False) -> dict:
    """A scene of ``images`` views; a white dot marks the projected object origin in each.

    ``symmetric`` declares the object symmetric about z in ``models_info.json``, as BOP does.
    """
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[210.0, 0.0, 101.0], [0.0, 210.0, 89.0], [0.0, 0.0, 1.0]])  # i + 0.5 centres
    R = random_rotations(images, g)
    t = torch.stack([torch.linspace(-0.05, 0.05, images), torch.zeros(images),
                     torch.linspace(0.7, 1.1, images)], 1)
    rgb = render(R, t, K, SIZE, generator=g)
    origin = project(torch.zeros(1, 3), R, t, K)[:, 0]
    scene = root / "test" / "000001"
    (scene / "rgb").mkdir(parents=True)
    (root / "models").mkdir()
    vertices, faces = satellite_mesh()
    write_ply(root / "models" / f"obj_{object_id:06d}.ply", vertices * 1000, faces)
    diameter_mm = satellite().diameter * 1000
    info = {"diameter": diameter_mm}
    if symmetric:
        info["symmetries_continuous"] = [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]
    (root / "models" / "models_info.json").write_text(json.dumps(
        {str(object_id): info, "5": {"diameter": 100.0}}))
    K_cv = K.clone()
    K_cv[:2, 2] -= 0.5  # BOP files use OpenCV's convention: pixel centres at integers
    gt, cam = {}, {}
    for i in range(images):
        image = (rgb[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        u, v = (int(c) for c in origin[i])
        image[v - 1:v + 2, u - 1:u + 2] = 255
        cv2.imwrite(str(scene / "rgb" / f"{i:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        gt[str(i)] = [{"cam_R_m2c": R[i].flatten().tolist(), "cam_t_m2c": (t[i] * 1000).tolist(),
                       "obj_id": object_id}]
        cam[str(i)] = {"cam_K": K_cv.flatten().tolist(), "depth_scale": 1.0}
    (scene / "scene_gt.json").write_text(json.dumps(gt))
    (scene / "scene_camera.json").write_text(json.dumps(cam))
    return {"R": R, "t": t}
