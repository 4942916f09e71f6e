"""The one device rule every task follows: ``auto`` is the GPU where there is one, else the CPU."""
from __future__ import annotations

import torch


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA where available (a trial that Ray gave a GPU sees it), else the CPU;
    anything else names the device itself (``cpu``, ``cuda:1``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
