"""The rendered object: a small satellite built from boxes (body, two unequal panels, antenna).

Not symmetric: the panels differ in length, the antenna and dish sit off-centre and every body
face has its own colour, so each pose has one appearance. The object is also a triangle mesh,
which gives model points for ADD, surface keypoints and a PLY file for BOP fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# (centre xyz, half-size xyz, rgb) in metres; the body is the origin's neighbourhood.
_BOXES = (
    ((0.000, 0.000, 0.000), (0.060, 0.055, 0.080), (0.80, 0.62, 0.25)),   # body, gold foil
    ((-0.130, 0.000, 0.010), (0.070, 0.004, 0.050), (0.10, 0.15, 0.60)),  # long panel, blue
    ((0.105, 0.000, -0.010), (0.045, 0.004, 0.040), (0.45, 0.10, 0.50)),  # short panel, purple
    ((0.025, 0.020, 0.115), (0.008, 0.008, 0.035), (0.75, 0.75, 0.78)),   # antenna mast
    ((0.000, -0.065, -0.030), (0.030, 0.010, 0.030), (0.85, 0.20, 0.15)),  # red dish mount
)
# Per-face tint of the body (-x, +x, -y, +y, -z, +z), multiplied with its gold: clearly
# different hues, so that no two faces (and no two poses) look alike under any light.
_BODY_FACE_TINT = ((1.25, 1.25, 1.25), (0.35, 0.35, 0.40), (1.20, 0.45, 0.45),
                   (0.45, 1.25, 0.55), (0.50, 0.70, 2.60), (1.20, 1.45, 0.60))


@dataclass(frozen=True)
class ObjectModel:
    """A rigid object: mesh, model points, keypoints and diameter (metres)."""

    vertices: np.ndarray     # (V, 3)
    faces: np.ndarray        # (F, 3) triangle vertex indices
    points: np.ndarray       # (P, 3) surface samples for ADD
    keypoints: np.ndarray    # (K, 3)
    diameter: float
    symmetric: bool = False


def box_tensors(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The satellite's boxes as tensors: centres, half sizes, colours and body face tints."""
    centres, halves, colours = (torch.tensor([b[i] for b in _BOXES], dtype=dtype, device=device)
                                for i in range(3))
    return {"centre": centres, "half": halves, "colour": colours,
            "tint": torch.tensor(_BODY_FACE_TINT, dtype=dtype, device=device)}


def _box_mesh(centre, half) -> tuple[np.ndarray, np.ndarray]:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    vertices = np.asarray(centre) + signs * np.asarray(half)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    return vertices, np.array(faces)


def satellite_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of the satellite (12 triangles a box)."""
    vertices, faces = [], []
    for centre, half, _ in _BOXES:
        v, f = _box_mesh(centre, half)
        faces.append(f + sum(len(x) for x in vertices))
        vertices.append(v)
    return np.concatenate(vertices), np.concatenate(faces)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` points spread uniformly (by area) over a triangle mesh's surface."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """Farthest point sampling, starting from the point farthest from the centroid."""
    chosen = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return points[chosen]


def diameter_of(points: np.ndarray) -> float:
    """Largest distance between two points (exact over the given points)."""
    diffs = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).max())


def box_corners(vertices: np.ndarray) -> np.ndarray:
    """The 8 corners of the axis-aligned bounding box (WDR's keypoints)."""
    lo, hi = vertices.min(0), vertices.max(0)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def object_from_mesh(vertices: np.ndarray, faces: np.ndarray, *, keypoints: int,
                     keypoint_kind: str = "surface", points: int = 1000, seed: int = 0,
                     diameter: float | None = None, symmetric: bool = False) -> ObjectModel:
    """Model points, keypoints (surface FPS or box corners + centre) and diameter of a mesh."""
    dense = sample_surface(vertices, faces, 20 * max(points, keypoints), seed)
    if keypoint_kind == "surface":
        kps = farthest_points(dense, keypoints)
    else:
        kps = np.concatenate([box_corners(vertices), vertices.mean(0, keepdims=True)])[:keypoints]
    model_points = dense[:points]
    diameter = diameter if diameter is not None else diameter_of(vertices)
    return ObjectModel(vertices, faces, model_points, kps, diameter, symmetric)


def satellite(*, keypoints: int = 11, keypoint_kind: str = "surface", seed: int = 0) -> ObjectModel:
    """The default object of the rendered pose task."""
    vertices, faces = satellite_mesh()
    return object_from_mesh(vertices, faces, keypoints=keypoints, keypoint_kind=keypoint_kind,
                            seed=seed)
