"""The 6D object pose task: a WDR-style keypoint network on rendered or BOP data."""
from __future__ import annotations

from .config import PoseConfig
from .task import PoseTask

__all__ = ["PoseConfig", "PoseTask"]
