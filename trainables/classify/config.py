"""Configuration of the classify task: a network by import path on an image folder."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ClassifyConfig:
    """``model``: ``module:callable`` building the network (``torchvision.models:resnet18``),
    called with ``model_args``; ``weights``: a state-dict file loaded into it before pretraining.
    ``data``: an image folder (``train/``, ``val/``, ``test/`` of class subfolders, or one folder
    of class subfolders split by ``seed`` into ``val_fraction`` and ``test_fraction``), read at
    ``image_size`` with ``channels`` 3 (RGB) or 1. ``modules``: ``auto`` (see ``network.py``) or
    a mapping of module names to layer-name prefixes."""

    model: str = ""  # required: module:callable building the network, e.g. torchvision.models:resnet18
    model_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of that call
    weights: str | None = None  # a state-dict file loaded into the network before pretraining
    data: str = ""  # required: an image folder (train/ val/ test/ of class folders, or class folders)
    image_size: int = 32  # images are resized to this side
    channels: int = 3  # 3 (RGB) or 1 (grey)
    val_fraction: float = 0.15  # of a folder without splits, the validation share (drawn by seed)
    test_fraction: float = 0.15  # of a folder without splits, the held-out test share
    #: auto (stem / body / head of near-equal shares of the quantized weights) or a mapping of
    #: module names to layer-name prefixes, e.g. {backbone: [features.], head: [classifier.]}
    modules: str | dict[str, Any] = "auto"
    batch_size: int = 64  # training batch size
    flip: bool = False          # mirror half the training images (not for digits or text)
    #: the first layer (on the image) and the last (the classes) stay at full precision, as in
    #: LSQ and most QAT work
    fp_first_last: bool = True
    seed: int = 0  # draws the split of a folder without splits

    def __hash__(self) -> int:  # its dict fields are read, never changed: hashed by value (worker caches)
        return hash(json.dumps(asdict(self), sort_keys=True, default=str))

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("task.model is required: 'module:callable', e.g. 'torchvision.models:resnet18'")
        if not self.data:
            raise ValueError("task.data is required: an image folder of class subfolders")
        # absolute: trials may run in another folder (whether it exists is the task's check: a
        # config names data that a set-up step may write later, as examples/digits.yaml does)
        object.__setattr__(self, "data", str(Path(self.data).expanduser().resolve()))
        if self.weights is not None:
            weights = Path(self.weights).expanduser().resolve()
            if not weights.is_file():
                raise ValueError(f"task.weights: {self.weights!r} does not exist")
            object.__setattr__(self, "weights", str(weights))
        for name in ("image_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task.{name} must be an integer >= 1, but got {value!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"task.channels must be 1 or 3, but got {self.channels!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"task.{name} must be between 0 and 0.5, but got {getattr(self, name)!r}")
        if isinstance(self.modules, str) and self.modules != "auto":
            raise ValueError(f"task.modules must be 'auto' or a mapping of module names to layer-name prefixes, "
                             f"but got {self.modules!r}")
