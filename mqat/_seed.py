"""One seed for every random generator a training run draws from."""
from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A seed for a part of a run (a trial, a stage) that depends only on ``seed`` and ``keys``:
    the same part gets the same numbers whatever ran before it."""
    out = int(seed)
    for key in keys:
        out = (out * 1_000_003 + int(key)) % (2**63 - 1)
    return out


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's and Python's global generators.

    Code that draws from these (data order, augmentation, initialisation) is then fixed by
    ``seed``; CUDA kernels may still differ run to run unless deterministic algorithms are on.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
