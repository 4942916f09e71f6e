"""COCO mAP from pycocotools (the reference implementation), with a bootstrap standard error
over images. The bootstrap reuses COCOeval's per-image matches: each resample only re-runs
``accumulate`` on a reindexed list of them, not the matching."""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from torch import Tensor


def _coco(truth: list[tuple[Tensor, Tensor]], classes: int, size: int):
    from pycocotools.coco import COCO

    images, annotations = [], []
    for i, (boxes, labels) in enumerate(truth):
        images.append({"id": i, "width": size, "height": size})
        for box, label in zip(boxes.tolist(), labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": c, "name": str(c)} for c in range(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _summary(precision: np.ndarray, area: int = 0) -> tuple[float, float]:
    """mAP@[.5:.95] and mAP@.5 from COCOeval's precision array (T, R, K, A, M), last maxDets."""
    p = precision[:, :, :, area, -1]
    valid = p > -1
    overall = float(p[valid].mean()) if valid.any() else 0.0
    at_50 = p[0][valid[0]]
    return overall, float(at_50.mean()) if at_50.size else 0.0


def coco_map(truth: list[tuple[Tensor, Tensor]], detections: list[tuple[Tensor, Tensor, Tensor]], *,
             classes: int, size: int, bootstrap: int = 20, seed: int = 0) -> dict[str, float]:
    """``accuracy`` = COCO mAP@[.5:.95] with ``accuracy_se`` (bootstrap over images), ``map_50``
    (mAP@.5) with ``map_50_se``, ``map_small`` and ``map_medium`` (COCO's area ranges)."""
    from pycocotools.cocoeval import COCOeval

    gt = _coco(truth, classes, size)
    results = [{"image_id": i, "category_id": int(c), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)}
               for i, (boxes, scores, labels) in enumerate(detections)
               for b, s, c in zip(boxes.tolist(), scores.tolist(), labels.tolist())]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        dt = gt.loadRes(results) if results else _coco([], classes, size)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    overall, at_50 = _summary(evaluator.eval["precision"])
    metrics = {"accuracy": overall, "map_50": at_50, "images": float(len(truth)),
               "map_small": _summary(evaluator.eval["precision"], 1)[0],
               "map_medium": _summary(evaluator.eval["precision"], 2)[0]}
    samples = _bootstrap(evaluator, len(truth), bootstrap, seed)
    metrics["accuracy_se"] = float(np.std(samples[:, 0], ddof=1)) if len(samples) > 1 else 0.0
    metrics["map_50_se"] = float(np.std(samples[:, 1], ddof=1)) if len(samples) > 1 else 0.0
    return metrics


def _bootstrap(evaluator, images: int, count: int, seed: int) -> np.ndarray:
    """(count, 2) mAP@[.5:.95] and mAP@.5 over image sets drawn with replacement (own generator:
    the global one, which seeds training, is left alone)."""
    if images < 2 or count < 2:
        return np.zeros((0, 2))
    rng = np.random.default_rng(seed)
    params = evaluator.params
    blocks = len(params.catIds) * len(params.areaRng)
    out = []
    for _ in range(count):
        pick = rng.integers(0, images, images)
        resampled = copy.copy(evaluator)
        resampled.evalImgs = [evaluator.evalImgs[b * images + i] for b in range(blocks) for i in pick]
        resampled._paramsEval = copy.copy(evaluator._paramsEval)
        resampled._paramsEval.imgIds = list(range(images))
        p = copy.copy(params)
        p.imgIds = list(range(images))
        p.areaRng, p.maxDets = [params.areaRng[0]], [params.maxDets[-1]]  # all areas, 100 detections
        with contextlib.redirect_stdout(io.StringIO()):
            resampled.accumulate(p)
        out.append(_summary(resampled.eval["precision"]))
    return np.array(out)
