"""Anchor-free targets, the detection loss (focal + GIoU, as FCOS and YOLOX use), decoding and NMS."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .network import STRIDES

#: objects up to this many pixels (longer side) go to stride 8, then 16; larger ones to 32
LEVEL_LIMITS = (24.0, 48.0)
CENTRE_RADIUS = 1.5  # cells, around an object's centre, that learn it (in strides)


def level_of(boxes: Tensor) -> Tensor:
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values
    return (side >= LEVEL_LIMITS[0]).long() + (side >= LEVEL_LIMITS[1]).long()


def assign(boxes: Tensor, labels: Tensor, size: int) -> list[tuple[Tensor, Tensor]]:
    """Per level: the class each cell learns (-1: background) and its box (x1 y1 x2 y2, pixels).
    A cell learns an object of its level when its centre lies in the object's box and within
    CENTRE_RADIUS strides of the object's centre (the cell holding the centre always does);
    where two objects claim a cell, the smaller wins."""
    out = []
    levels = level_of(boxes)
    order = torch.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), descending=True)
    for level, stride in enumerate(STRIDES):
        cells = size // stride
        centre = (torch.arange(cells, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(centre, centre, indexing="ij")
        cls = torch.full((cells, cells), -1, dtype=torch.long)
        target = torch.zeros(4, cells, cells)
        for i in order.tolist():
            if levels[i] != level:
                continue
            x1, y1, x2, y2 = boxes[i].tolist()
            gx, gy = (x1 + x2) / 2, (y1 + y2) / 2
            inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
            near = ((cx - gx).abs() < CENTRE_RADIUS * stride) & ((cy - gy).abs() < CENTRE_RADIUS * stride)
            region = inside & near
            region[min(int(gy // stride), cells - 1), min(int(gx // stride), cells - 1)] = True
            cls[region] = labels[i]
            target[:, region] = boxes[i][:, None]
        out.append((cls, target))
    return out


def _cell_centres(height: int, width: int, stride: int, device) -> tuple[Tensor, Tensor]:
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    return torch.meshgrid(ys, xs, indexing="ij")


def boxes_from(distances: Tensor, stride: int) -> Tensor:
    """(N, 4, H, W) raw distances -> (N, 4, H, W) boxes x1 y1 x2 y2 in pixels."""
    cy, cx = _cell_centres(distances.shape[-2], distances.shape[-1], stride, distances.device)
    d = torch.exp(distances.float().clamp(max=8.0)) * stride
    return torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], dim=1)


def giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU of paired boxes (K, 4)."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1), (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    iou = inter / union.clamp(min=1e-6)
    return iou - (hull - union) / hull.clamp(min=1e-6)


def detection_loss(outputs: list[tuple[Tensor, Tensor]], targets: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Sigmoid focal loss on the classes of every cell plus 2x the GIoU loss of the cells that
    learn an object, both per object cell."""
    cls_loss, box_loss, positives = 0.0, 0.0, 0
    for (logits, distances), (cls, target), stride in zip(outputs, targets, STRIDES):
        logits = logits.float()
        onehot = torch.zeros_like(logits)
        positive = cls >= 0
        onehot.scatter_(1, cls.clamp(min=0)[:, None], positive[:, None].float())
        cls_loss = cls_loss + _focal(logits, onehot)
        if positive.any():
            pred = boxes_from(distances, stride).permute(0, 2, 3, 1)[positive]
            true = target.permute(0, 2, 3, 1)[positive]
            box_loss = box_loss + (1 - giou(pred, true)).sum()
        positives += int(positive.sum())
    return (cls_loss + 2.0 * box_loss) / max(positives, 1)


def _focal(logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return (weight * ce * (1 - p_t) ** gamma).sum()


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression; the indices kept, best first."""
    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    lt = torch.max(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-6)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


@torch.no_grad()
def decode(outputs: list[tuple[Tensor, Tensor]], *, score_threshold: float, iou_threshold: float,
           candidates: int = 200, max_detections: int = 100) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per image: boxes (K, 4), scores (K,) and classes (K,) after class-wise NMS."""
    per_level_scores, per_level_boxes = [], []
    for (logits, distances), stride in zip(outputs, STRIDES):
        n, classes = logits.shape[:2]
        per_level_scores.append(torch.sigmoid(logits.float()).reshape(n, classes, -1))
        per_level_boxes.append(boxes_from(distances, stride).reshape(n, 4, -1))
    scores, boxes = torch.cat(per_level_scores, 2).cpu(), torch.cat(per_level_boxes, 2).cpu()
    return [suppress(s, b, score_threshold=score_threshold, iou_threshold=iou_threshold,
                     candidates=candidates, max_detections=max_detections) for s, b in zip(scores, boxes)]


def suppress(scores: Tensor, boxes: Tensor, *, score_threshold: float, iou_threshold: float,
             candidates: int = 200, max_detections: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """One image's class scores (C, A) and xyxy boxes (4, A) to boxes, scores and classes after class-wise NMS."""
    best, cls = scores.max(0)
    keep = torch.nonzero(best > score_threshold).flatten()
    keep = keep[torch.argsort(best[keep], descending=True)[:candidates]]
    kb, ks, kc = boxes[:, keep].T, best[keep], cls[keep]
    kept = nms(kb + kc[:, None].float() * 10_000, ks, iou_threshold)[:max_detections]  # class-wise
    return kb[kept], ks[kept], kc[kept]
