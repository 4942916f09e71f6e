"""What a trial fits reads training images only; validation images only score (issue: fitting on
the split that ranks is a leak). The task's validation and test images carry a mark (a constant
offset no training image has): every forward pass of a marked image outside ``evaluate`` would be
a fit on them (calibration of quantizer steps, BN re-estimation, QC, EMA), and fails the test."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from spaces import trial_settings
from trainables.base import BaseTask
from trainables.trainable import StageSettings, run_flow

MARKS = {"train": 0.0, "val": 100.0, "test": -100.0}  # added to every pixel of the split


@dataclass(frozen=True)
class MarkedConfig:
    batch_size: int = 16


class MarkedTask(BaseTask):
    """Two-class blobs; each split's images shifted by its mark, undone inside the network."""

    Config = MarkedConfig
    modules: ClassVar[dict[str, list[str]]] = {"stem": ["stem."], "body": ["body."], "head": ["head."]}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scoring = False
        self.fitted_on: list[str] = []  # the splits of batches seen outside evaluate

    def network(self) -> nn.Module:
        task = self

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                self.head = nn.Linear(8, 2)

            def forward(self, x):
                mark = float(x.mean().round(decimals=-2))
                if not task.scoring:
                    task.fitted_on.append(next(s for s, m in MARKS.items() if m == mark))
                x = self.body(self.stem(x - mark))
                return self.head(x.mean((2, 3)))

        return Net()

    def dataset(self, split: str) -> TensorDataset:
        g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        labels = torch.randint(2, (64,), generator=g)
        images = torch.randn(64, 1, 8, 8, generator=g) * 0.1 + labels[:, None, None, None].float()
        return TensorDataset(images + MARKS[split], labels)

    def loss(self, model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    def score(self, model, batches) -> dict[str, float]:
        correct = [(model(x).argmax(1) == y).float() for x, y in batches]
        return {"accuracy": float(torch.cat(correct).mean()), "accuracy_se": 0.0}

    def evaluate(self, model, *, images=None, split="val"):
        self.scoring = True
        try:
            return super().evaluate(model, images=images, split=split)
        finally:
            self.scoring = False


@pytest.mark.parametrize("ema, qc, bn", [(False, False, True), (True, True, True)])
def test_what_a_trial_fits_reads_training_images_only(tmp_path, ema, qc, bn):
    torch.manual_seed(0)
    task = MarkedTask(MarkedConfig(), cache_dir=tmp_path, device="cpu", progress=False)
    point = {"order": "stem>body>head", "bits_stem": 4, "bits_body": 4, "bits_head": 4, "act_bits": 8,
             "ema": ema, "ema_decay": 0.9, "qc": qc, "qc_lr": 1e-3, "bn": bn, "lr": 1e-3,
             "epochs_per_stage": 1, "seed": 0}
    settings = trial_settings(point, task.module_map.names, ema_warmup_steps=2)
    stage = StageSettings(images_per_epoch=32, eval_images=32, calibration_batches=2, bn_batches=2,
                          share_inputs=qc)
    scored: list[str] = []
    original = task.score
    task.score = lambda model, batches: (scored.append("val"), original(model, batches))[1]

    result = run_flow(task, stage, settings, task.build_model())

    assert len(result.stages) == 3 + qc and scored            # the flow ran and scored on validation
    assert task.fitted_on and set(task.fitted_on) == {"train"}, \
        f"fitted on {sorted(set(task.fitted_on) - {'train'})} images"
