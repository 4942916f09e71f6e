"""A batched z-buffer renderer for objects made of boxes: exact ray-box intersection in torch.

Per pixel a ray leaves the camera centre; each box is intersected by the slab method in the
object frame and the nearest hit wins. Faces get their box's colour (the body a per-face
tint, the panels a solar-cell grid) and Lambertian shading under a random light; behind the
object lies a cluttered background, and some images get an occluding patch in front of it.

Everything follows the dtype of the poses ``R``: the data sets render in float64, where the few
ulps by which CPUs' vector kernels differ (random normals, reductions, fused multiply-adds) stay
far below the uint8 rounding of a pixel, so a set renders the same bytes on every machine.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .satellite import box_tensors

_EPS = 1e-9
_PANELS = (1, 2)


def _rays(K: Tensor, size: int) -> Tensor:
    """Ray directions (H*W, 3) in the camera frame, z = 1, through pixel centres."""
    v, u = torch.meshgrid(torch.arange(size, dtype=K.dtype) + 0.5,
                          torch.arange(size, dtype=K.dtype) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(-1, 3)


def _background(batch: int, size: int, g: torch.Generator, dtype: torch.dtype) -> Tensor:
    base = torch.rand(batch, 3, 1, 1, generator=g, dtype=dtype) * 0.45
    coarse = F.interpolate(torch.randn(batch, 3, 4, 4, generator=g, dtype=dtype), size=size, mode="bilinear")
    fine = F.interpolate(torch.randn(batch, 3, 16, 16, generator=g, dtype=dtype), size=size, mode="bilinear")
    return (base + 0.18 * coarse + 0.08 * fine).clamp(0, 1)


def _shade(hit_box, axis, sign, local, normal_cam, light, boxes) -> Tensor:
    """Colour (B, HW, 3) of each hit from its box, face and position on the face."""
    colour = boxes["colour"][hit_box]
    face = axis * 2 + (sign > 0).long()
    body = (hit_box == 0).unsqueeze(-1)
    colour = torch.where(body, colour * boxes["tint"][face], colour)
    # a solar-cell grid on the panels: dark lines every quarter of the panel
    panel = torch.zeros_like(hit_box, dtype=torch.bool)
    for index in _PANELS:
        panel |= hit_box == index
    grid = ((local[..., 0] * 4).frac() < 0.12) | ((local[..., 2] * 3).frac() < 0.12)
    colour = torch.where((panel & grid).unsqueeze(-1), colour * 0.35, colour)
    lambert = (normal_cam * light.unsqueeze(1)).sum(-1).clamp(min=0).unsqueeze(-1)
    return (colour * (0.35 + 0.75 * lambert)).clamp(max=1.0)


def _intersect(origin: Tensor, direction: Tensor, boxes: dict[str, Tensor]):
    """Nearest box hit per ray: depth (inf on a miss), box index and face axis, each (B, HW).

    ``origin`` (B, 3, 1) and ``direction`` (B, 3, HW) are in the object frame; axes come first
    so that each slab is a contiguous (B, HW) plane (a reduction over a trailing size-3
    dimension is several times slower on a CPU).
    """
    safe = torch.where(direction.abs() < _EPS, torch.full_like(direction, _EPS), direction)
    inv = safe.reciprocal()
    shape = direction.shape[0], direction.shape[2]
    depth = torch.full(shape, float("inf"), dtype=direction.dtype)
    hit_box = torch.zeros(shape, dtype=torch.long)
    hit_axis = torch.zeros(shape, dtype=torch.long)
    for index, (centre, half) in enumerate(zip(boxes["centre"], boxes["half"])):
        t1 = ((centre - half).view(1, 3, 1) - origin) * inv
        t2 = ((centre + half).view(1, 3, 1) - origin) * inv
        n0, n1, n2 = torch.minimum(t1, t2).unbind(1)
        f0, f1, f2 = torch.maximum(t1, t2).unbind(1)
        n12 = torch.maximum(n1, n2)
        near = torch.maximum(n0, n12)
        far = torch.minimum(torch.minimum(f0, f1), f2)
        closer = (far >= near) & (near > 0) & (near < depth)
        axis = torch.where(n0 >= n12, 0, torch.where(n1 >= n2, 1, 2))
        depth = torch.where(closer, near, depth)
        hit_box.masked_fill_(closer, index)
        hit_axis = torch.where(closer, axis, hit_axis)
    return depth, hit_box, hit_axis


def render(R: Tensor, t: Tensor, K: Tensor, size: int, *, generator: torch.Generator,
           occlusion: float = 0.0) -> Tensor:
    """Images (B, 3, size, size) in [0, 1] of the satellite under poses R (B,3,3), t (B,3)."""
    dtype = R.dtype
    boxes = box_tensors(dtype=dtype)
    batch = R.shape[0]
    t, K = t.to(dtype), K.to(dtype)
    rays = _rays(K, size)                                        # (HW, 3)
    origin = -(t.unsqueeze(1) @ R).transpose(1, 2)               # R^T (0 - t), (B, 3, 1)
    direction = R.transpose(1, 2) @ rays.T                       # R^T d per ray, (B, 3, HW)
    depth, hit_box, axis = _intersect(origin, direction, boxes)
    covered = torch.isfinite(depth)

    direction = direction.transpose(1, 2)                        # (B, HW, 3)
    d_axis = direction.gather(-1, axis.unsqueeze(-1)).squeeze(-1)
    sign = -torch.sign(d_axis)                                   # the face looks back at the ray
    normal = F.one_hot(axis, 3).to(dtype) * sign.unsqueeze(-1)  # object frame
    normal_cam = normal @ R.transpose(1, 2)
    point = origin.transpose(1, 2) + torch.where(covered, depth, 0.0).unsqueeze(-1) * direction
    local = (point - boxes["centre"][hit_box]) / boxes["half"][hit_box] * 0.5 + 0.5
    light = torch.randn(batch, 3, generator=generator, dtype=dtype) + torch.tensor([0.0, 0.0, -1.5], dtype=dtype)
    light = light / light.norm(dim=1, keepdim=True)
    colour = _shade(hit_box, axis, sign, local, normal_cam, light, boxes)

    image = _background(batch, size, generator, dtype).flatten(2).transpose(1, 2)  # (B, HW, 3)
    image = torch.where(covered.unsqueeze(-1), colour, image)
    image = image.transpose(1, 2).reshape(batch, 3, size, size)
    if occlusion > 0:
        image = _occlude(image, t, K, occlusion, generator)
    image = image + 0.02 * torch.randn(image.shape, generator=generator, dtype=dtype)
    return image.clamp(0, 1)


def _occlude(image: Tensor, t: Tensor, K: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Paint a random patch over part of the object in ``fraction`` of the images."""
    batch, _, size, _ = image.shape
    centre = (t[:, :2] / t[:, 2:3]) * K[0, 0] + K[:2, 2]         # projected object centre
    span = K[0, 0] * 0.3 / t[:, 2]                               # about the object's size in px
    dtype = image.dtype
    chosen = torch.rand(batch, generator=g, dtype=dtype) < fraction
    half = span * (0.12 + 0.18 * torch.rand(batch, generator=g, dtype=dtype))
    offset = (torch.rand(batch, 2, generator=g, dtype=dtype) - 0.5) * span.unsqueeze(1)
    lo = centre + offset - half.unsqueeze(1)
    hi = centre + offset + half.unsqueeze(1)
    coords = torch.arange(size, dtype=dtype) + 0.5
    inside_x = (coords[None] >= lo[:, :1]) & (coords[None] <= hi[:, :1])   # (B, W)
    inside_y = (coords[None] >= lo[:, 1:]) & (coords[None] <= hi[:, 1:])   # (B, H)
    mask = (inside_y[:, :, None] & inside_x[:, None, :] & chosen[:, None, None]).unsqueeze(1)
    patch = torch.rand(batch, 3, 1, 1, generator=g, dtype=dtype).expand_as(image)
    return torch.where(mask, patch, image)
