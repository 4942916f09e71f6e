"""Configuration of the yolo task: an Ultralytics YOLO on detection data (validated on creation)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..detect.config import SceneData


@dataclass(frozen=True)
class YoloConfig(SceneData):
    """The yolo task: detection data (:class:`SceneData`: rendered scenes or COCO files) and the
    Ultralytics network: a model YAML it ships (``yolov8n.yaml``, ``yolo11n.yaml``), a YAML file of
    yours, or your trained ``.pt`` (a pickle, loaded only from the path you name)."""

    model: str = "yolov8n.yaml"  # an Ultralytics model YAML (bundled, or a path), or your trained .pt file
    image_size: int = 128  # image side in pixels, a multiple of 32
    batch_size: int = 16  # training batch size
    score_threshold: float = 0.001  # detections below this score are dropped before NMS (COCO's practice)
    nms_iou: float = 0.6  # non-maximum suppression's IoU threshold
    #: the first convolution (on the image) and the last (Detect's fixed DFL one) stay at full precision
    fp_first_last: bool = True

    def __hash__(self) -> int:  # as SceneData's (a subclass of a class with __hash__ gets none)
        return SceneData.__hash__(self)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ValueError("task.model must name an Ultralytics model YAML (yolov8n.yaml) or a .pt file")
        if self.model.endswith(".pt"):
            path = Path(self.model).expanduser().resolve()
            if not path.is_file():
                raise ValueError(f"task.model: {self.model!r} does not exist (a .pt is read from the path you name)")
            object.__setattr__(self, "model", str(path))
        elif Path(self.model).expanduser().is_file():  # a YAML of the user's: absolute, trials run elsewhere
            object.__setattr__(self, "model", str(Path(self.model).expanduser().resolve()))
