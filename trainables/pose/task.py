"""The 6D pose task: rendered (or BOP) images, the keypoint network, ADD-0.1d as accuracy."""
from __future__ import annotations

import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import mqat

from ..device import pick_device
from ..tasks import Metric
from .augment import jitter, random_angles, roll
from .bop import BopSpec, check_bop, load_bop, load_bop_object
from .camera import project
from .config import PoseConfig
from .dataset import PoseData, RenderSpec, cached_render
from .keypoints import decode, pose_loss
from .metrics import mean_pose, pose_metrics
from .network import MODULE_MAP, PoseNet
from .pnp import solve_pnp
from .satellite import ObjectModel, satellite

_MEAN, _STD = 0.5, 0.25


SPLITS = ("val", "test")


class PoseTask:
    """Satellite pose estimation from keypoints; see :class:`PoseConfig` for its settings.

    Data are built lazily (rendered once and cached under ``cache_dir``), so a task can be
    created and checked cheaply on the driver. Three disjoint splits: train (fine-tuning),
    val (every decision of a search) and test (only the final report).

    Data order and augmentation draw from torch's global generator, so whoever seeds it
    (:func:`mqat.seed_everything`, per pretraining and per stage of a trial) fixes them.
    """

    Config = PoseConfig

    @classmethod
    def module_names(cls, config: PoseConfig) -> list[str]:
        return list(MODULE_MAP)

    def __init__(self, config: PoseConfig, *, cache_dir: str | Path = "data", device: str = "auto",
                 progress: bool = True):
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.device = pick_device(device)
        self.progress = progress
        self.module_map = mqat.ModuleMap(MODULE_MAP, fp_first_last=config.fp_first_last)
        self._splits: dict[str, PoseData] = {}  # rendered or read on first use
        if config.source == "bop":
            check_bop(self._bop_spec())

    @property
    def metric(self) -> Metric:
        """ADD-0.1d, or ADD-S-0.1d for a symmetric object (what the pose literature ranks by)."""
        name = "ADD-S-0.1d" if self.object.symmetric else "ADD-0.1d"
        return Metric(name=name, label=f"accuracy ({name})", companions={
            "add_auc": "ADD AUC(0.1d)", "rot_err_deg_median": "median rotation error (deg)",
            "trans_err_cm_median": "median translation error (cm)", "kp_err_px": "keypoint error (px)"})

    # ---- data -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Render (or read) every split once, here, rather than in trials racing each other."""
        for split in ("train", "val", "test"):
            self.data(split)

    def _bop_spec(self) -> BopSpec:
        c = self.config
        return BopSpec(c.bop_path, c.bop_object_id, c.bop_split, c.image_size, seed=c.seed)

    @cached_property
    def object(self) -> ObjectModel:
        c = self.config
        if c.source == "bop":
            return load_bop_object(self._bop_spec(), keypoints=c.keypoints, keypoint_kind=c.keypoint_kind)
        return satellite(keypoints=c.keypoints, keypoint_kind=c.keypoint_kind)

    def _render_spec(self, split: str) -> RenderSpec:
        """Disjoint seeds per split (train 3s, val 3s+1, test 3s+2): no image is in two splits."""
        c = self.config
        index = ("train", "val", "test").index(split)
        count = (c.train_images, c.val_images, c.test_images)[index]
        return RenderSpec(count, seed=3 * c.seed + index, size=c.image_size, occlusion=c.occlusion)

    @cached_property
    def _bop_splits(self) -> dict[str, PoseData]:
        c = self.config
        data = load_bop(self._bop_spec(), self.object, spans=RenderSpec(1, 0).spans)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(c.seed))
        n_val = max(1, round(len(data) * c.bop_val_fraction))
        n_test = max(1, round(len(data) * c.bop_test_fraction))
        return {"val": data.subset(order[:n_val]), "test": data.subset(order[n_val:n_val + n_test]),
                "train": data.subset(order[n_val + n_test:])}

    def data(self, split: str) -> PoseData:
        """The images of ``split`` ('train', 'val' or 'test'), rendered or read on first use."""
        if split not in self._splits:
            if self.config.source == "bop":
                self._splits[split] = self._bop_splits[split]
            else:
                self._splits[split] = cached_render(self._render_spec(split), self.cache_dir,
                                                   progress=self.progress, desc=f"rendering {split}")
        return self._splits[split]

    @property
    def train_data(self) -> PoseData:
        return self.data("train")

    @property
    def val_data(self) -> PoseData:
        return self.data("val")

    @cached_property
    def _keypoints3d(self) -> Tensor:
        return torch.tensor(self.object.keypoints, dtype=torch.float32)

    def keypoints2d(self, data: PoseData, index) -> Tensor:
        return project(self._keypoints3d, data.R[index], data.t[index], data.K[index])

    def _inputs(self, images: Tensor) -> Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255)
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def _normalise(x: Tensor) -> Tensor:
        return (x - _MEAN) / _STD

    # ---- model ------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        c = self.config
        model = PoseNet(keypoints=c.keypoints, widths=c.widths, depth=c.depth, fpn_channels=c.fpn_channels)
        return model.to(self.device, memory_format=torch.channels_last)

    def fingerprint(self) -> dict[str, Any]:
        # what fixes the data and the FP model: not which layers quantization leaves alone
        return {"task": "pose", "config": {k: v for k, v in asdict(self.config).items() if k != "fp_first_last"}}

    def steps_per_epoch(self, images: int | None = None) -> int:
        """Optimizer steps in one ``train_epoch`` (over ``images`` of the training set, or all)."""
        count = len(self.train_data) if images is None else min(images, len(self.train_data))
        return -(-count // self.config.batch_size)

    # ---- training ---------------------------------------------------------------------
    def train_batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Augmented, normalised images and their 2D keypoints for the training images ``index``."""
        data = self.train_data
        x = self._inputs(data.images[index])
        kps = self.keypoints2d(data, index).to(self.device)
        if self.config.roll_augment:
            x, kps = roll(x, kps, random_angles(len(index)).to(self.device))
        x = jitter(x)
        return self._normalise(x).contiguous(memory_format=torch.channels_last), kps

    def train_epoch(self, model: nn.Module, optimizer, on_step, *, images: int | None = None) -> float:
        """One pass over the training set (or a random ``images`` of it); returns the mean loss."""
        order = torch.randperm(len(self.train_data))[:images]
        total, count = 0.0, 0
        for index in order.split(self.config.batch_size):
            x, kps = self.train_batch(index)
            loss = pose_loss(model(x), kps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            total += loss.item() * len(index)
            count += len(index)
        return total / count

    def loss_fn(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return pose_loss(model(batch[0]), batch[1])

    def sensitivity_batches(self, count: int = 4) -> list[tuple[Tensor, Tensor]]:
        """Un-augmented validation batches with their keypoints (the driver's sensitivity)."""
        return self._plain_batches(self.val_data, count)

    def train_batches(self, count: int = 8) -> list[tuple[Tensor, Tensor]]:
        """Un-augmented training batches with their keypoints (calibration, BN re-estimation)."""
        return self._plain_batches(self.train_data, count)

    def _plain_batches(self, data: PoseData, count: int) -> list[tuple[Tensor, Tensor]]:
        bs = self.config.batch_size * 2
        out = []
        for start in range(0, min(len(data), count * bs), bs):
            index = torch.arange(start, min(start + bs, len(data)))
            x = self._normalise(self._inputs(data.images[index]))
            out.append((x, self.keypoints2d(data, index).to(self.device)))
        return out

    # ---- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def predict_keypoints(self, model: nn.Module, data: PoseData, batch_size: int = 128) -> Tensor:
        model.eval()
        out = []
        for start in range(0, len(data), batch_size):
            x = self._normalise(self._inputs(data.images[start:start + batch_size]))
            logits, offsets = model(x)
            out.append(decode(logits.float(), offsets.float())[0].cpu())
        return torch.cat(out)

    def solve_poses(self, keypoints: Tensor, data: PoseData) -> tuple[Tensor, Tensor]:
        obj = self.object.keypoints
        ransac = self.config.pnp == "ransac"
        Rs, ts = [], []
        for kp, K in zip(keypoints.numpy(), data.K.numpy()):
            R, t = solve_pnp(obj, kp, K, ransac=ransac, threshold=self.config.pnp_threshold)
            Rs.append(R)
            ts.append(t)
        return (torch.tensor(np.array(Rs), dtype=torch.float32),
                torch.tensor(np.array(ts), dtype=torch.float32))

    def evaluate(self, model: nn.Module, *, images: int | None = None, split: str = "val") -> dict[str, float]:
        """ADD-0.1d (ADD-S-0.1d for a symmetric object) on the validation (or test) split
        (``accuracy``) with the metrics beside it.

        ``images`` scores only the first images of the split: cheaper, for progress reports.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, but got {split!r}")
        data = self.data(split)
        data = data if images is None else data.subset(slice(0, images))
        kps = self.predict_keypoints(model, data)
        start = time.perf_counter()
        R_pred, t_pred = self.solve_poses(kps, data)
        pnp_seconds = time.perf_counter() - start
        metrics = self._score(R_pred, t_pred, data)
        true = self.keypoints2d(data, slice(None))
        metrics["pnp_ms_per_image"] = 1000 * pnp_seconds / len(data)
        metrics["kp_err_px"] = float((kps - true).norm(dim=-1).mean())
        return metrics

    def _score(self, R_pred: Tensor, t_pred: Tensor, data: PoseData) -> dict[str, float]:
        points = torch.tensor(self.object.points, dtype=torch.float32)
        return pose_metrics(points, self.object.diameter, R_pred, t_pred, data.R, data.t, data.bins,
                            symmetric=self.object.symmetric)

    def baseline(self) -> dict[str, float]:
        """The metrics of always predicting the mean training pose (what no learning gives)."""
        R, t = mean_pose(self.train_data.R, self.train_data.t)
        n = len(self.val_data)
        return self._score(R.expand(n, 3, 3), t.expand(n, 3), self.val_data)
