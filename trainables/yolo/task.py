"""The yolo task: an Ultralytics YOLO (v8, 11, ...) searched module by module, through the same
door as any task: the backbone, the neck and the Detect layer as its YAML splits them, trained
with Ultralytics' own loss, its NMS on the outputs, COCO mAP from pycocotools as the detect task
scores. The data are the detect task's (rendered scenes, or COCO files).

Ultralytics (AGPL-3.0) is an optional extra, never a core dependency: ``pip install -e '.[yolo]'``.
It is imported offline (no probe of the network, its settings file in the temporary folder). A
``.pt`` model is a pickle: loading it runs code it holds, so it is read only from the path the
config names (every other checkpoint of this project is loaded with ``weights_only``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import mqat

from ..detect.boxes import suppress
from ..detect.scenes import Scenes
from ..detect.task import DetectTask
from .config import YoloConfig

EXTRA = "pip install -e '.[yolo]'"
MODULES = ("backbone", "neck", "head")


def ultralytics() -> Any:
    """The ``ultralytics`` package, imported offline, the settings file it writes at import in the
    temporary folder (not the home folder, nor a config's folders: a config refused writes nothing
    there); a ValueError (one line) where the extra is not installed."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no network probe at import
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "mqat-ultralytics"))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics as package
    except ImportError:
        raise ValueError(f"task yolo needs Ultralytics (AGPL-3.0), an optional extra: {EXTRA}") from None
    return package


def yaml_modules(model: nn.Module) -> dict[str, list[str]]:
    """backbone / neck / head from the model's YAML: its ``backbone:`` layers, then its ``head:``
    layers but the last (the neck), then the last (Detect)."""
    backbone, count = len(model.yaml["backbone"]), len(model.model)  # type: ignore[arg-type, index]
    return {"backbone": [f"model.{i}." for i in range(backbone)],
            "neck": [f"model.{i}." for i in range(backbone, count - 1)],
            "head": [f"model.{count - 1}."]}


class YoloTask(DetectTask):
    """Detection with an Ultralytics YOLO; ``accuracy`` is COCO mAP@[.5:.95]."""

    Config = YoloConfig

    @classmethod
    def module_names(cls, config: YoloConfig) -> list[str]:
        return list(MODULES)

    def __init__(self, config: YoloConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        ultralytics()
        self.module_map = mqat.ModuleMap(yaml_modules(self.network()), fp_first_last=config.fp_first_last)

    # ---- the network ------------------------------------------------------------------
    def network(self) -> nn.Module:
        """A fresh network from the YAML (weights from torch's generator), or the ``.pt``'s."""
        from ultralytics.nn.tasks import DetectionModel
        from ultralytics.utils import DEFAULT_CFG

        c = self.config
        if c.model.endswith(".pt"):
            checkpoint = torch.load(c.model, map_location="cpu", weights_only=False)  # a pickle: trusted by name
            model = (checkpoint.get("ema") or checkpoint["model"]).float()
            if int(model.yaml.get("nc", -1)) != len(self.classes):
                raise ValueError(f"task.model: {c.model} detects {model.yaml.get('nc')} classes, the data have "
                                 f"{len(self.classes)}")
        else:
            try:
                model = DetectionModel(c.model, nc=len(self.classes), verbose=False)
            except Exception as err:  # noqa: BLE001 - an unknown or broken YAML is one line
                raise ValueError(f"task.model: Ultralytics cannot build {c.model!r}: {type(err).__name__}: "
                                 f"{(str(err).splitlines() or [''])[0]}") from None
        model.args = DEFAULT_CFG  # the loss's gains (box, cls, dfl), Ultralytics' defaults
        for parameter in model.parameters():
            parameter.requires_grad_(True)  # a .pt may come frozen
        model.model[-1].dfl.conv.weight.requires_grad_(False)  # DFL's fixed projection stays fixed
        return model

    def build_model(self) -> nn.Module:
        return self.network().to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        out = {**super().fingerprint(), "task": "yolo", "config": asdict(self.config)}
        if self.config.model.endswith(".pt") or Path(self.config.model).is_file():
            out["model_file"] = hashlib.sha256(Path(self.config.model).read_bytes()).hexdigest()[:16]
        return out

    # ---- data: Ultralytics' target format --------------------------------------------
    def _inputs(self, images: Tensor) -> Tensor:
        return images.to(self.device, non_blocking=True).float() / 255  # what Ultralytics trains on

    def _targets(self, data: Scenes, index, flip: Tensor | None = None) -> dict[str, Tensor]:  # type: ignore[override]
        """The boxes of the images ``index`` as Ultralytics' loss reads them: ``batch_idx``,
        ``cls`` and normalised centre-width-height ``bboxes`` (mirrored where ``flip``)."""
        size = float(self.config.image_size)
        rows, classes, boxes = [], [], []
        for j, i in enumerate(index):
            box, label = data.objects(int(i))
            if flip is not None and bool(flip[j]):
                box = torch.stack([size - box[:, 2], box[:, 1], size - box[:, 0], box[:, 3]], 1)
            boxes.append(torch.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2,
                                      box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], 1) / size)
            classes.append(label.float()[:, None])
            rows.append(torch.full((len(label),), float(j)))
        return {"batch_idx": torch.cat(rows).to(self.device), "cls": torch.cat(classes).to(self.device),
                "bboxes": torch.cat(boxes).float().to(self.device)}

    def _plain_batches(self, split: str, count: int) -> list[tuple[Tensor, dict[str, Tensor]]]:  # type: ignore[override]
        data, size = self.data(split), self.config.batch_size
        return [(self._inputs(data.images[start:start + size]), self._targets(data, range(start, min(start + size, len(data)))))
                for start in range(0, min(len(data), count * size), size)]

    # ---- training: Ultralytics' loss ------------------------------------------------------
    def loss_fn(self, model: nn.Module, batch: tuple[Tensor, dict[str, Tensor]]) -> Tensor:
        """Ultralytics' detection loss (box, class, DFL), per image."""
        x, targets = batch
        loss, _ = model.loss({**targets, "img": x})  # type: ignore[operator]
        return loss.sum() / len(x)

    def train_epoch(self, model: nn.Module, optimizer, on_step, *, images: int | None = None) -> float:
        data = self.data("train")
        order = torch.randperm(self._train_count())[:images]
        total = 0.0
        for index in order.split(self.config.batch_size):
            flip = torch.rand(len(index)) < 0.5
            x = self._inputs(data.images[index])
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(-1), x)
            loss = self.loss_fn(model, (x, self._targets(data, index, flip)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            total += loss.item() * len(index)
        return total / len(order)

    # ---- detections ------------------------------------------------------------------
    def decode(self, outputs: Any) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Detect's (N, 4 + C, A) xywh boxes and class scores through the detect task's NMS.

        Not Ultralytics' own NMS: it calls torchvision's compiled operator, which does not load
        beside a CPU torch when torchvision is a CUDA build (as here)."""
        predictions = (outputs[0] if isinstance(outputs, (tuple, list)) else outputs).float().cpu()
        centre, size = predictions[:, :2], predictions[:, 2:4]
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
        return [suppress(s, b, score_threshold=self.config.score_threshold, iou_threshold=self.config.nms_iou,
                         candidates=300) for s, b in zip(predictions[:, 4:], boxes)]
