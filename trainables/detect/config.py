"""Configuration of the detection task (validated on creation, before any work)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SceneData:
    """Detection data: rendered multi-object scenes, or ``source: coco``: per split an image
    folder and its COCO annotations, ``coco: {train: {images: dir, annotations: instances.json},
    val: ..., test: ...}``, the classes read from the training file; and how detections are
    decoded and scored. The ``*_images`` counts and the scene settings apply to rendered data only."""

    source: str = "rendered"  # rendered (multi-object scenes, rendered and cached) or coco
    #: with source: coco, per split its image folder and COCO annotations:
    #: {train: {images: dir, annotations: instances.json}, val: ..., test: ...}
    coco: dict[str, Any] = field(default_factory=dict)
    train_images: int = 6000  # rendered training images
    val_images: int = 1000  # rendered validation images: every decision of the search
    test_images: int = 1000  # rendered held-out images: only the front's final report
    image_size: int = 96  # image side in pixels, a multiple of 32
    max_objects: int = 6               # per image: 1 to this many
    min_size: float = 6.0              # object sides in pixels, log-uniform between min_size and max_size
    max_size: float = 56.0             # the largest object side in pixels
    clutter: int = 6                   # distracting strokes per image (no class of their own)
    batch_size: int = 32  # training batch size
    score_threshold: float = 0.05  # detections below this score are dropped before NMS
    nms_iou: float = 0.5  # non-maximum suppression's IoU threshold
    bootstrap: int = 20                # resamples of the images for the standard error of mAP
    seed: int = 0  # draws the rendered scenes

    def __hash__(self) -> int:  # its dict field is read, never changed: hashed by value (worker caches)
        return hash(json.dumps(asdict(self), sort_keys=True, default=str))

    def __post_init__(self) -> None:
        if self.source not in ("rendered", "coco"):
            raise ValueError(f"task.source must be one of ['rendered', 'coco'], but got {self.source!r}")
        if self.source == "coco":
            object.__setattr__(self, "coco", _coco_paths(self.coco))
        elif self.coco:
            raise ValueError("task.coco is read only with task.source: coco")
        for name in ("train_images", "val_images", "test_images", "max_objects", "batch_size", "bootstrap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task.{name} must be an integer >= 1, but got {value!r}")
        if self.image_size < 64 or self.image_size % 32:
            raise ValueError(f"task.image_size must be a multiple of 32 and >= 64, but got {self.image_size!r}")
        if not 2 <= self.min_size < self.max_size <= self.image_size:
            raise ValueError(f"task.min_size and task.max_size must satisfy 2 <= min_size < max_size <= "
                             f"image_size, but got {self.min_size!r} and {self.max_size!r}")
        if not 0 <= self.clutter <= 50:
            raise ValueError(f"task.clutter must lie in [0, 50], but got {self.clutter!r}")
        if not 0 < self.score_threshold < 1 or not 0 < self.nms_iou < 1:
            raise ValueError("task.score_threshold and task.nms_iou must lie in (0, 1)")


@dataclass(frozen=True)
class DetectConfig(SceneData):
    """The detect task: its data (:class:`SceneData`) and the YOLO-style detector's size."""

    widths: tuple[int, ...] = (16, 32, 64, 96, 128)   # backbone stages at strides 2, 4, 8, 16, 32
    neck_channels: int = 48  # channels of the neck's levels

    def __hash__(self) -> int:  # as SceneData's (a subclass of a class with __hash__ gets none)
        return SceneData.__hash__(self)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.neck_channels, bool) or not isinstance(self.neck_channels, int) or self.neck_channels < 1:
            raise ValueError(f"task.neck_channels must be an integer >= 1, but got {self.neck_channels!r}")
        if len(self.widths) != 5 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"task.widths must be 5 positive integers (the backbone's stages at strides "
                             f"2 to 32), but got {list(self.widths)}")


def _coco_paths(coco: Any) -> dict[str, dict[str, str]]:
    """Each split's image folder and annotations file, checked and made absolute (trials may
    run in another folder)."""
    if not isinstance(coco, dict) or sorted(coco) != sorted(SPLITS):
        raise ValueError("task.coco must give train, val and test, each {images: folder, annotations: file}, "
                         f"but got {coco!r}")
    out = {}
    for split in SPLITS:
        entry = coco[split]
        if not isinstance(entry, dict) or sorted(entry) != ["annotations", "images"]:
            raise ValueError(f"task.coco.{split} must be {{images: folder, annotations: file}}, but got {entry!r}")
        images, annotations = Path(entry["images"]).expanduser().resolve(), Path(entry["annotations"]).expanduser().resolve()
        if not images.is_dir():
            raise ValueError(f"task.coco.{split}.images: {entry['images']!r} is not a folder")
        if not annotations.is_file():
            raise ValueError(f"task.coco.{split}.annotations: {entry['annotations']!r} does not exist")
        out[split] = {"images": str(images), "annotations": str(annotations)}
    return out
