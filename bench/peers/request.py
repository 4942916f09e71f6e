"""What a peer's worker is handed, in one file: the task and its FP weights, the images to choose on, the layers to give bits to and the budgets. Written in the project's venv, read in a
peer's (both hold torch, hence ``torch.save``); the worker builds the model and reads the images
through the project's own task code."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Request:
    """One bit choice to make. ``layers`` and ``fp_layers`` map the project's layer names (in network
    order) to their weight counts: the first get bits, the second stay at full precision (the task's
    first and last layers), which every arm's compression carries at 32 bits."""

    task_name: str
    task_config: Any  # the task's own config dataclass
    cache_dir: str
    fp_state: dict[str, torch.Tensor]
    layers: dict[str, int]
    fp_layers: dict[str, int]
    choices: tuple[int, ...]  # the weight bit-widths every arm chooses from (the task's space)
    targets: tuple[float, ...]  # weight compression, in the project's measure
    batches: int  # how many batches of ``split`` the peer scores and calibrates on
    seed: int = 0
    #: "val": the batches the project's own sensitivity reads (task.sensitivity_batches), so every arm
    #: decides on the same images; "train": task.train_batches, which a fitted FP model has memorised
    split: str = "val"
    quick: bool = False  # a tiny run that checks the mechanics: the peers' cheaper settings


def save(request: Request, path: Path) -> Path:
    torch.save({f.name: getattr(request, f.name) for f in fields(request)}, path)  # asdict would flatten the task's config
    return path


def load(path: str | Path) -> Request:
    data = torch.load(path, map_location="cpu", weights_only=False)  # our own file: it holds a dataclass
    return Request(**{**data, "choices": tuple(data["choices"]), "targets": tuple(data["targets"])})
