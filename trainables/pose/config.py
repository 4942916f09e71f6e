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

    source: str = "rendered"  # rendered (a satellite, rendered and cached) or bop (a BOP dataset on disk)
    train_images: int = 16000  # rendered training images (fine-tuning and everything fitted)
    val_images: int = 2000  # rendered validation images: every decision of the search
    test_images: int = 2000  # rendered held-out images: only the front's final report
    image_size: int = 128  # image side in pixels, a multiple of 32
    occlusion: float = 0.3  # the fraction of rendered images with an occluding patch over the object
    bop_path: str | None = None  # a BOP dataset's folder (SwissCube, LINEMOD, ...), with source: bop
    bop_object_id: int = 1  # the BOP object to estimate the pose of
    bop_split: str = "test"  # the BOP split read
    bop_val_fraction: float = 0.2  # of the BOP images, the validation share
    bop_test_fraction: float = 0.2  # of the BOP images, the held-out test share
    keypoints: int = 11  # 2D keypoints the network predicts (at least 4, for PnP)
    keypoint_kind: str = "surface"  # surface (farthest-point samples of the object) or box (its corners, WDR's)
    widths: tuple[int, ...] = (16, 48, 128, 256)  # channels of the backbone's stages at strides 4, 8, 16, 32
    depth: int = 1  # residual blocks per backbone stage
    fpn_channels: int = 32  # channels of the FPN's levels
    batch_size: int = 32  # training batch size
    roll_augment: bool = True  # rotate training images about the principal point (an exact camera roll)
    pnp: str = "ransac"  # ransac (OpenCV's solvePnPRansac, then refined) or iterative
    pnp_threshold: float = 3.0  # RANSAC's reprojection threshold, pixels
    #: the network's first layer (on the RGB image) and last one stay at full precision, as in
    #: LSQ and most QAT work: 0.2% of the weights, and 2-bit on the input cost 0.07 ADD-0.1d
    fp_first_last: bool = True
    seed: int = 0  # draws the rendered images (and the BOP split)

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
