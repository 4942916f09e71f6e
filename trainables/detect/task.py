"""The detection task: rendered scenes, a YOLO-style detector, COCO mAP from pycocotools.

Written only through the public task contract (``trainables/tasks.py``), as a user's task is.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import mqat

from ..device import pick_device
from ..tasks import Metric
from .boxes import assign, decode, detection_loss
from .coco import cached_coco, categories, files_hash
from .config import DetectConfig
from .metrics import coco_map
from .network import MODULE_MAP, STRIDES, Detector
from .scenes import CLASSES, Scenes, SceneSpec, cached_scenes

SPLITS = ("train", "val", "test")


class DetectTask:
    """Multi-object detection of three shape classes; ``accuracy`` is COCO mAP@[.5:.95].

    Three disjoint splits rendered from seeds 3s, 3s+1, 3s+2. Training targets are assigned
    once per image (the only augmentation, a horizontal flip, flips them too). Data order and
    the flips draw from torch's global generator.
    """

    Config = DetectConfig
    metric = Metric(name="mAP", label="COCO mAP@[.5:.95]", companions={
        "map_50": "mAP@.5", "map_small": "mAP small", "map_medium": "mAP medium"})

    @classmethod
    def module_names(cls, config: DetectConfig) -> list[str]:
        return list(MODULE_MAP)

    def __init__(self, config: DetectConfig, *, cache_dir: str | Path = "data", device: str = "auto",
                 progress: bool = True):
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.device = pick_device(device)
        self.progress = progress
        self.module_map = mqat.ModuleMap(MODULE_MAP)
        self._splits: dict[str, Scenes] = {}

    # ---- data -------------------------------------------------------------------------
    def _spec(self, split: str) -> SceneSpec:
        c = self.config
        index = SPLITS.index(split)
        count = (c.train_images, c.val_images, c.test_images)[index]
        return SceneSpec(count, seed=3 * c.seed + index, size=c.image_size, max_objects=c.max_objects,
                         min_size=c.min_size, max_size=c.max_size, clutter=c.clutter)

    @cached_property
    def _categories(self) -> list[tuple[int, str]]:
        """COCO data: the training file's categories, ``(id, name)``; rendered: the shapes."""
        if self.config.source == "coco":
            return categories(self.config.coco["train"]["annotations"])
        return list(enumerate(CLASSES))

    @property
    def classes(self) -> list[str]:
        return [name for _, name in self._categories]

    def data(self, split: str) -> Scenes:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, but got {split!r}")
        if split not in self._splits:
            if self.config.source == "coco":
                files = self.config.coco[split]
                self._splits[split] = cached_coco(files["images"], files["annotations"], size=self.config.image_size,
                                                  class_ids=[i for i, _ in self._categories], cache_dir=self.cache_dir)
            else:
                self._splits[split] = cached_scenes(self._spec(split), self.cache_dir, progress=self.progress,
                                                    desc=f"rendering {split}")
        return self._splits[split]

    def prepare_data(self) -> None:
        for split in SPLITS:
            self.data(split)

    @cached_property
    def _train_targets(self) -> list[tuple[Tensor, Tensor]]:
        """The targets of every training image, assigned once."""
        data = self.data("train")
        return self._targets(data, range(len(data)))

    def _inputs(self, images: Tensor) -> Tensor:
        return (images.to(self.device, non_blocking=True).float() / 255 - 0.5) / 0.25

    def _targets(self, data: Scenes, index) -> list[tuple[Tensor, Tensor]]:
        """Per level, the class (N, H, W) and box (N, 4, H, W) targets of the images ``index``."""
        per_image = [assign(*data.objects(int(i)), self.config.image_size) for i in index]
        return [(torch.stack([t[level][0] for t in per_image]), torch.stack([t[level][1] for t in per_image]))
                for level in range(len(STRIDES))]

    # ---- the contract -----------------------------------------------------------------
    def build_model(self) -> nn.Module:
        c = self.config
        return Detector(len(self.classes), c.widths, c.neck_channels).to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        out = {"task": "detect", "config": asdict(self.config)}
        if self.config.source == "coco":  # the files themselves, not only their paths
            out["files"] = {s: files_hash(f["images"], f["annotations"]) for s, f in self.config.coco.items()}
        return out

    def _train_count(self) -> int:
        return len(self.data("train")) if self.config.source == "coco" else self.config.train_images

    def steps_per_epoch(self, images: int | None = None) -> int:
        total = self._train_count()
        count = total if images is None else min(images, total)
        return math.ceil(count / self.config.batch_size)

    def train_batch(self, index: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Images and targets of the training images ``index``, half of them mirrored."""
        x = self._inputs(self.data("train").images[index])
        targets = [(cls[index].to(self.device), box[index].to(self.device)) for cls, box in self._train_targets]
        flip = (torch.rand(len(index)) < 0.5).to(self.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        size = float(self.config.image_size)
        flipped = []
        for cls, box in targets:
            mirrored = torch.stack([size - box[:, 2], box[:, 1], size - box[:, 0], box[:, 3]], 1).flip(-1)
            flipped.append((torch.where(flip[:, None, None], cls.flip(-1), cls),
                            torch.where(flip[:, None, None, None], mirrored, box)))
        return x, flipped

    def train_epoch(self, model: nn.Module, optimizer, on_step, *, images: int | None = None) -> float:
        order = torch.randperm(self._train_count())[:images]
        total = 0.0
        for index in order.split(self.config.batch_size):
            x, targets = self.train_batch(index)
            loss = detection_loss(model(x), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            total += loss.item() * len(index)
        return total / len(order)

    def loss_fn(self, model: nn.Module, batch: tuple[Tensor, list[tuple[Tensor, Tensor]]]) -> Tensor:
        return detection_loss(model(batch[0]), batch[1])

    def _plain_batches(self, split: str, count: int) -> list[tuple[Tensor, list[tuple[Tensor, Tensor]]]]:
        data, size = self.data(split), self.config.batch_size
        out = []
        for start in range(0, min(len(data), count * size), size):
            index = torch.arange(start, min(start + size, len(data)))
            targets = [(cls.to(self.device), box.to(self.device)) for cls, box in self._targets(data, index)]
            out.append((self._inputs(data.images[index]), targets))
        return out

    def sensitivity_batches(self, count: int) -> list:
        return self._plain_batches("val", count)

    def train_batches(self, count: int) -> list:
        return self._plain_batches("train", count)

    @torch.no_grad()
    def detect(self, model: nn.Module, images: Tensor, batch_size: int = 128) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Boxes, scores and classes per image (after NMS)."""
        model.eval()
        out = []
        for start in range(0, len(images), batch_size):
            out += self.decode(model(self._inputs(images[start:start + batch_size])))
        return out

    def decode(self, outputs: Any) -> list[tuple[Tensor, Tensor, Tensor]]:
        """A batch's network outputs as boxes, scores and classes per image (after NMS)."""
        return decode(outputs, score_threshold=self.config.score_threshold, iou_threshold=self.config.nms_iou)

    def evaluate(self, model: nn.Module, *, images: int | None = None, split: str = "val") -> dict[str, float]:
        """COCO mAP@[.5:.95] (``accuracy``) and mAP@.5 on the first ``images`` of ``split``,
        with bootstrap standard errors."""
        data = self.data(split)
        count = len(data) if images is None else min(images, len(data))
        detections = self.detect(model, data.images[:count])
        truth = [data.objects(i) for i in range(count)]
        return coco_map(truth, detections, classes=len(self.classes), size=self.config.image_size,
                        bootstrap=self.config.bootstrap, seed=self.config.seed)
