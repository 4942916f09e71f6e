"""The classify task: any network built by import path, on an image folder, top-1 as accuracy.

Written on the short contract (``trainables/base.py``), as a user's task is.
"""
from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

import mqat

from ..base import BaseTask, Metric
from ..pretrain import load_state_dict
from ..tasks import code_hash_of_file
from .config import ClassifyConfig
from .images import Images, listing_hash, read_folder
from .network import AUTO_NAMES, auto_modules, build


class ClassifyTask(BaseTask):
    """Image classification; ``accuracy`` is top-1 on the asked split, top-5 beside it."""

    Config = ClassifyConfig
    metric = Metric(name="top-1", label="top-1 accuracy", companions={"top5": "top-5", "loss": "cross-entropy"})

    @classmethod
    def modules_for(cls, config: ClassifyConfig) -> dict[str, list[str]]:
        if config.modules == "auto":
            model = cls._network(config)
            return auto_modules(model, kept=mqat.ModuleMap.first_and_last(model) if config.fp_first_last else ())
        return {name: [p] if isinstance(p, str) else list(p) for name, p in dict(config.modules).items()}

    @classmethod
    def module_names(cls, config: ClassifyConfig) -> list[str]:
        return list(AUTO_NAMES) if config.modules == "auto" else list(dict(config.modules))

    def __init__(self, config: ClassifyConfig, **kwargs: Any):
        if not Path(config.data).is_dir():
            raise ValueError(f"task.data: {config.data} is not a folder (examples/digits_to_folder.py writes one)")
        super().__init__(config, **kwargs)

    @classmethod
    def code_modules(cls, config: ClassifyConfig) -> list[str]:
        """The model builder's module: shipped to a cluster's workers where it is the user's."""
        return [config.model.partition(":")[0]]

    @staticmethod
    def _network(config: ClassifyConfig) -> nn.Module:
        model = build(config.model, config.model_args)
        if config.weights:
            try:
                model.load_state_dict(load_state_dict(config.weights))
            except RuntimeError as err:
                raise ValueError(f"task.weights do not fit {config.model}: {str(err).splitlines()[0]}") from None
        return model

    def network(self) -> nn.Module:
        return self._network(self.config)

    @cached_property
    def _splits(self) -> tuple[dict[str, Images], list[str]]:
        c = self.config
        return read_folder(c.data, size=c.image_size, channels=c.channels, val=c.val_fraction, test=c.test_fraction,
                           seed=c.seed, cache_dir=self.cache_dir)

    @property
    def classes(self) -> list[str]:
        return self._splits[1]

    @cached_property
    def _normalisation(self) -> tuple[Tensor, Tensor]:
        """Each channel's mean and standard deviation over the training images."""
        train = self._splits[0]["train"].images.float() / 255
        return train.mean((0, 2, 3), keepdim=True)[0], train.std((0, 2, 3), keepdim=True)[0].clamp_min(1e-3)

    def dataset(self, split: str) -> TensorDataset:
        data = self._splits[0][split]
        mean, std = self._normalisation
        return TensorDataset((data.images.float() / 255 - mean) / std, data.labels)

    def prepare_data(self) -> None:
        """Read the folder once, on the driver, into the verified cache the trials read."""
        self._splits  # noqa: B018 - reading it fills the cache

    def augment(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        if not self.config.flip:
            return batch
        images, labels = batch
        flip = torch.rand(len(images), device=images.device) < 0.5
        return torch.where(flip[:, None, None, None], images.flip(-1), images), labels

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def score(self, model: nn.Module, batches) -> dict[str, float]:
        logits, labels = map(torch.cat, zip(*[(model(x), y) for x, y in batches]))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 = float((top[:, 0] == labels).float().mean())
        top5 = float((top == labels[:, None]).any(1).float().mean())
        return {"accuracy": top1, "accuracy_se": math.sqrt(top1 * (1 - top1) / len(labels)), "top5": top5,
                "loss": float(F.cross_entropy(logits, labels)), "images": float(len(labels))}

    def baseline(self) -> dict[str, float]:
        """Always answering the commonest class of the training split, scored on validation."""
        train, val = self._splits[0]["train"].labels, self._splits[0]["val"].labels
        common = int(train.bincount().argmax())
        return {"accuracy": float((val == common).float().mean())}

    def fingerprint(self) -> dict[str, Any]:
        """The config, the images (names and sizes) and the code of a user's model builder."""
        module = self.config.model.partition(":")[0]
        return {**super().fingerprint(), "images": listing_hash(self.config.data),
                "model_code": code_hash_of_file(module)}
