"""Multi-object detection: rendered scenes, a YOLO-style detector, COCO mAP (pycocotools)."""
from __future__ import annotations

from .config import DetectConfig
from .task import DetectTask

__all__ = ["DetectConfig", "DetectTask"]
