"""Reading one object of a BOP-format dataset (SwissCube, LINEMOD, Occluded-LINEMOD...).

Layout: ``<root>/models/models_info.json``, ``<root>/models/obj_<id:06d>.ply`` and, per scene,
``<root>/<split>/<scene:06d>/{scene_gt.json, scene_camera.json, rgb/<image:06d>.png|jpg}``.
BOP lengths are millimetres; they are read as metres. Each image of the object is cropped
around the object, with the same crop side for the whole set, so nearer objects look larger
as in the rendered data, and resized to the task's image size, the intrinsics following.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import PoseData
from .ply import read_ply
from .satellite import ObjectModel, object_from_mesh

_MM = 1e-3


@dataclass(frozen=True)
class BopSpec:
    path: str
    object_id: int
    split: str = "test"
    size: int = 128
    #: the median object diameter spans this fraction of a crop
    span: float = 0.5
    centre_jitter: float = 0.12
    seed: int = 0


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"BOP dataset is missing {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def check_bop(spec: BopSpec) -> dict:
    """Validate the directory and object id before any work; return the object's model info."""
    root = Path(spec.path)
    if not root.is_dir():
        raise ValueError(f"BOP dataset path {str(root)!r} does not exist or is not a directory")
    info = _json(root / "models" / "models_info.json")
    if str(spec.object_id) not in info:
        ids = sorted(int(k) for k in info)
        raise ValueError(f"object id {spec.object_id} is not in the BOP dataset at {root}; "
                         f"it has objects {ids}")
    if not (root / spec.split).is_dir():
        raise ValueError(f"BOP dataset at {root} has no split {spec.split!r}")
    return info[str(spec.object_id)]


def load_bop_object(spec: BopSpec, *, keypoints: int, keypoint_kind: str) -> ObjectModel:
    """The object's mesh (metres), keypoints and diameter from ``models/``."""
    info = check_bop(spec)
    mesh = Path(spec.path) / "models" / f"obj_{spec.object_id:06d}.ply"
    if not mesh.is_file():
        raise ValueError(f"BOP dataset is missing the object model {mesh}")
    vertices, faces = read_ply(mesh)
    symmetric = bool(info.get("symmetries_discrete") or info.get("symmetries_continuous"))
    return object_from_mesh(vertices * _MM, faces, keypoints=keypoints, keypoint_kind=keypoint_kind,
                            diameter=float(info["diameter"]) * _MM, symmetric=symmetric)


def _annotations(spec: BopSpec):
    """(rgb path, K, R, t in metres) for every image showing the object (first instance)."""
    for scene in sorted(p for p in (Path(spec.path) / spec.split).iterdir() if p.is_dir()):
        gts = _json(scene / "scene_gt.json")
        cameras = _json(scene / "scene_camera.json")
        for image_id, instances in sorted(gts.items(), key=lambda kv: int(kv[0])):
            ann = next((a for a in instances if int(a["obj_id"]) == spec.object_id), None)
            if ann is None:
                continue
            rgb = next((scene / "rgb" / f"{int(image_id):06d}{ext}" for ext in (".png", ".jpg")
                        if (scene / "rgb" / f"{int(image_id):06d}{ext}").is_file()), None)
            if rgb is None:
                raise ValueError(f"BOP dataset is missing the image {int(image_id):06d} of {scene}")
            K = np.array(cameras[image_id]["cam_K"], dtype=float).reshape(3, 3)
            R = np.array(ann["cam_R_m2c"], dtype=float).reshape(3, 3)
            t = np.array(ann["cam_t_m2c"], dtype=float) * _MM
            yield rgb, K, R, t


def load_bop(spec: BopSpec, obj: ObjectModel, *, spans) -> PoseData:
    """Crop every image of the object to ``spec.size`` pixels; bins from the object's span."""
    import cv2

    check_bop(spec)
    records = list(_annotations(spec))
    if not records:
        raise ValueError(f"no image of object {spec.object_id} in split {spec.split!r} at {spec.path}")
    diam_px = np.array([K[0, 0] * obj.diameter / t[2] for _, K, _, t in records])
    side = float(np.median(diam_px)) / spec.span
    scale = spec.size / side
    rng = np.random.default_rng(spec.seed)
    images, Ks, Rs, ts, bins = [], [], [], [], []
    for (rgb, K, R, t), d_px in zip(records, diam_px):
        bgr = cv2.imread(str(rgb), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {rgb}")
        # continuous coordinates with pixel centres at i + 0.5, as the renderer uses
        K = K.copy()
        K[:2, 2] += 0.5
        centre = (K @ t)[:2] / t[2] + rng.uniform(-1, 1, 2) * spec.centre_jitter * side
        x0, y0 = centre - side / 2
        A = np.array([[scale, 0, -scale * x0], [0, scale, -scale * y0], [0, 0, 1.0]])
        # warpAffine works in OpenCV's convention (pixel centres at integers): shift by 0.5
        M = A[:2].copy()
        M[:, 2] += 0.5 * scale - 0.5
        crop = cv2.warpAffine(bgr, M, (spec.size, spec.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        images.append(torch.from_numpy(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
        Ks.append(A @ K)
        Rs.append(R)
        ts.append(t)
        span = d_px * scale / spec.size
        bins.append(next((i for i, (lo, _) in enumerate(spans) if span >= lo), len(spans) - 1))
    f32 = torch.float32
    return PoseData(torch.stack(images), torch.tensor(np.array(Ks), dtype=f32),
                    torch.tensor(np.array(Rs), dtype=f32), torch.tensor(np.array(ts), dtype=f32),
                    torch.tensor(bins))
