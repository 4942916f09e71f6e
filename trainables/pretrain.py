"""Full-precision pretraining of a task's model, cached by a hash of what determines it."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import mqat

from . import cachefile
from .tasks import Task, code_hash


@dataclass(frozen=True)
class PretrainConfig:
    """Epochs and Adam settings (cosine decay to zero); or an existing ``checkpoint`` to use.
    ``seed`` fixes the initial weights, the data order and the augmentation.

    ``reestimate_bn``: after training, the BatchNorm statistics are also re-estimated from
    ``bn_batches`` training batches, and the better of the two models on the validation split is
    kept (a small BN momentum, torchvision's 0.01 for one, leaves stale statistics after a
    short training). ``require_above_baseline``: the search refuses an FP model whose score is
    not clearly above the task's baseline (a model that learned nothing); false lets a smoke
    test search an untrained model on purpose."""

    epochs: int = 5  # epochs of full-precision training (cosine decay to zero)
    lr: float = 2e-3  # Adam's learning rate
    weight_decay: float = 0.0  # Adam's weight decay
    checkpoint: str | None = None  # a state-dict file to use instead of pretraining
    seed: int = 0  # the initial weights, the data order and the augmentation
    reestimate_bn: bool = True  # also re-estimate BN statistics after training; the better model is kept
    bn_batches: int = 16  # training batches that re-estimate them
    require_above_baseline: bool = True  # refuse an FP model not clearly above the task's baseline

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"pretrain.epochs must be an integer >= 1, but got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"pretrain.lr must be > 0, but got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"pretrain.weight_decay must be >= 0, but got {self.weight_decay!r}")
        if isinstance(self.bn_batches, bool) or not isinstance(self.bn_batches, int) or self.bn_batches < 1:
            raise ValueError(f"pretrain.bn_batches must be an integer >= 1, but got {self.bn_batches!r}")


@dataclass(frozen=True)
class Pretrained:
    """Where the FP state dict lies, its metrics, and whether it came from the cache."""

    checkpoint: Path
    metrics: dict[str, Any]
    cached: bool


#: settings that do not change the pretrained model, so not part of its cache key
_NOT_IN_KEY = ("checkpoint", "require_above_baseline")


def cache_key(task: Task, config: PretrainConfig) -> str:
    """What determines the FP model: the task's fingerprint and code, the pretraining settings."""
    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_KEY}
    payload = json.dumps({"task": task.fingerprint(), "code": code_hash(type(task)), "pretrain": settings},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_checkpoint(task: Task, config: PretrainConfig, *, cache_dir: str | Path) -> Path | None:
    """The cached FP checkpoint of ``config``, checked against the size and hash recorded when
    it was written; None if there is none yet, ValueError if it is damaged (the driver refuses
    then, before any trial starts)."""
    directory = Path(cache_dir) / "pretrain" / cache_key(task, config)
    checkpoint = directory / "model.pt"
    if not (checkpoint.is_file() and (directory / "metrics.json").is_file()):
        return None
    reason = cachefile.problem(checkpoint)
    if reason:
        raise ValueError(f"the cached FP checkpoint {checkpoint} is damaged ({reason}): delete "
                         f"{directory} to pretrain again")
    return checkpoint


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict read safely (``weights_only``); ValueError with the reason if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot read checkpoint {str(path)!r}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a state dict of tensors")
    return state


def load_model(task: Task, path: str | Path) -> nn.Module:
    """The task's model with the checkpoint's weights; ValueError if they do not fit."""
    model = task.build_model()
    try:
        model.load_state_dict(load_state_dict(path))
    except RuntimeError as err:
        raise ValueError(f"checkpoint {str(path)!r} does not fit the task's model: "
                         f"{str(err).splitlines()[0]}") from None
    return model


def train_fp(task: Task, config: PretrainConfig, *, progress: bool = True) -> tuple[nn.Module, float]:
    """Train the task's model at full precision; returns it and the training wall time."""
    from tqdm import tqdm

    mqat.seed_everything(config.seed)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * task.steps_per_epoch()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    start = time.perf_counter()
    with tqdm(total=total, desc="pretraining", unit="step", disable=not progress) as bar:
        def on_step() -> None:
            schedule.step()
            bar.update()

        for epoch in range(config.epochs):
            model.train()
            loss = task.train_epoch(model, optimizer, on_step)
            if not math.isfinite(loss):
                raise FloatingPointError(f"pretraining loss became {loss} in epoch {epoch + 1}")
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}")
    return model, time.perf_counter() - start


#: how far above its baseline an FP model must score to be searched, in standard errors
BASELINE_MARGIN_SE = 3.0


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules())


def with_better_bn(task: Task, model: nn.Module, config: PretrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The model and its validation metrics, or the same weights with re-estimated BatchNorm
    statistics where those score higher (``bn_reestimated`` says which was kept)."""
    metrics = task.evaluate(model)
    if not (config.reestimate_bn and _has_batchnorm(model)):
        return model, {**metrics, "bn_reestimated": False}
    candidate = mqat.reestimate_bn(copy.deepcopy(model), task.train_batches(config.bn_batches))
    candidate_metrics = task.evaluate(candidate)
    if candidate_metrics["accuracy"] > metrics["accuracy"]:
        return candidate, {**candidate_metrics, "bn_reestimated": True,
                           "accuracy_trained_bn": metrics["accuracy"]}
    return model, {**metrics, "bn_reestimated": False}


def baseline_problem(metrics: dict[str, Any], metric_name: str = "accuracy") -> str | None:
    """None if the FP model scores clearly above its task's baseline (or the task has none);
    else why it should not be searched, in one line."""
    base, score = metrics.get("baseline_accuracy"), metrics.get("accuracy")
    if base is None or score is None:
        return None
    se = float(metrics.get("accuracy_se") or 0.0)
    if score - base > BASELINE_MARGIN_SE * se and score > base:
        return None
    return (f"the FP model scores {metric_name} {score:.3f} +- {se:.3f}, not clearly above the baseline "
            f"{base:.3f} of a model that learned nothing (by {BASELINE_MARGIN_SE:g} standard errors): "
            "it learned too little (pretrain.epochs, pretrain.lr) or its BatchNorm statistics are stale "
            "(pretrain.reestimate_bn); a quantized copy of it would measure nothing. To search it anyway, "
            "set pretrain.require_above_baseline: false")


def _scored(task: Task, model: nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
    """Validation ``metrics`` with the test split's score and the task's baseline beside them."""
    baseline = task.baseline() if hasattr(task, "baseline") else {}  # optional in the contract
    return {**metrics, "test_accuracy": task.evaluate(model, split="test")["accuracy"],
            "baseline_accuracy": baseline.get("accuracy")}


def pretrain(task: Task, config: PretrainConfig, *, cache_dir: str | Path, progress: bool = True) -> Pretrained:
    """The FP checkpoint for ``task``: the configured one (scored here), a cached one, or a newly
    trained one (its BatchNorm statistics re-estimated where that scores higher)."""
    if config.checkpoint:
        model = load_model(task, config.checkpoint)  # fails now, clearly, if it does not fit
        task.prepare_data()
        metrics = _scored(task, model, task.evaluate(model))
        return Pretrained(Path(config.checkpoint), {**metrics, "source": "checkpoint"}, cached=True)
    directory = Path(cache_dir) / "pretrain" / cache_key(task, config)
    checkpoint, metrics_path = directory / "model.pt", directory / "metrics.json"
    if cached_checkpoint(task, config, cache_dir=cache_dir):
        return Pretrained(checkpoint, json.loads(metrics_path.read_text()), cached=True)

    start = time.perf_counter()
    task.prepare_data()  # the data first, timed on their own
    data_seconds = time.perf_counter() - start
    model, train_seconds = train_fp(task, config, progress=progress)
    model, metrics = with_better_bn(task, model, config)
    metrics = _scored(task, model, metrics)
    metrics.update({"train_seconds": train_seconds, "data_seconds": data_seconds, "epochs": config.epochs})
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    mqat.atomic_write(checkpoint, lambda f: torch.save(state, f))
    cachefile.write_record(checkpoint)  # before the metrics, whose file marks the entry complete
    mqat.atomic_write(metrics_path, lambda f: f.write(json.dumps(metrics, indent=2).encode()))
    return Pretrained(checkpoint, metrics, cached=False)
