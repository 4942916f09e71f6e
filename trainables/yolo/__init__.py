"""An Ultralytics YOLO searched module by module (an optional extra: ``pip install -e '.[yolo]'``)."""
from __future__ import annotations

from .config import YoloConfig
from .task import YoloTask

__all__ = ["YoloConfig", "YoloTask"]
