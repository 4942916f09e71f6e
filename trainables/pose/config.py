"""Configuration of the pose task (validated on creation, before any work)."""
from __future__ import annotations

from dataclasses import dataclass


def _positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"task.{name} must be an integer >= {minimum}, but got {value!r}")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"task.{name} must be one of {list(choices)}, but got {value!r}")


@dataclass(frozen=True)
class PoseConfig:
    """The 6D pose task: data (rendered or BOP), network size and keypoints, decoding."""

    source: str = "rendered"
    train_images: int = 16000
    val_images: int = 2000
    test_images: int = 2000
    image_size: int = 128
    occlusion: float = 0.3
    bop_path: str | None = None
    bop_object_id: int = 1
    bop_split: str = "test"
    bop_val_fraction: float = 0.2
    bop_test_fraction: float = 0.2
    keypoints: int = 11
    keypoint_kind: str = "surface"
    widths: tuple[int, ...] = (16, 48, 128, 256)
    depth: int = 1
    fpn_channels: int = 32
    batch_size: int = 32
    roll_augment: bool = True
    pnp: str = "ransac"
    pnp_threshold: float = 3.0
    #: the network's first layer (on the RGB image) and last one stay at full precision, as in
    #: LSQ and most QAT work: 0.2% of the weights, and 2-bit on the input cost 0.07 ADD-0.1d
    fp_first_last: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("source", self.source, ("rendered", "bop"))
        for name in ("train_images", "val_images", "test_images", "keypoints", "depth", "fpn_channels", "batch_size"):
            _positive_int(name, getattr(self, name))
        if len(self.widths) != 4 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1
                                        for w in self.widths):
            raise ValueError(f"task.widths must be 4 positive integers (channels of the backbone's "
                             f"stages at strides 4, 8, 16, 32), but got {list(self.widths)}")
        _positive_int("image_size", self.image_size, 32)
        if self.image_size % 32:
            raise ValueError(f"task.image_size must be a multiple of 32 (the backbone's stride), "
                             f"but got {self.image_size}")
        if self.keypoints < 4:
            raise ValueError(f"task.keypoints must be at least 4 for PnP, but got {self.keypoints}")
        _choice("keypoint_kind", self.keypoint_kind, ("surface", "box"))
        if self.keypoint_kind == "box" and self.keypoints > 9:
            raise ValueError("task.keypoints can be at most 9 (8 corners + centre) with "
                             f"keypoint_kind 'box', but got {self.keypoints}")
        _choice("pnp", self.pnp, ("ransac", "iterative"))
        if not 0.0 <= self.occlusion <= 1.0:
            raise ValueError(f"task.occlusion must lie in [0, 1], but got {self.occlusion!r}")
        for name in ("bop_val_fraction", "bop_test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"task.{name} must lie in (0, 1), but got {getattr(self, name)!r}")
        if self.bop_val_fraction + self.bop_test_fraction >= 1.0:
            raise ValueError("task.bop_val_fraction + task.bop_test_fraction must leave images to "
                             f"train on, but they add up to {self.bop_val_fraction + self.bop_test_fraction:g}")
        if self.source == "bop" and not self.bop_path:
            raise ValueError("task.bop_path is required when task.source is 'bop'")
