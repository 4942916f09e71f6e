"""Shared fixtures: a small modular network in the backbone / FPN / head shape."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import mqat
from search import ray_env

ray_env.apply()  # Ray's environment (auth mode, loopback) before any test starts Ray

MODULES = {"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]}


class TinyNet(nn.Module):
    """Conv backbone with BN, a 1x1 FPN, a linear head: every layer kind the library handles."""

    def __init__(self, width: int = 8, bias: bool = True):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2, bias=bias), nn.ReLU())
        self.fpn = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 1, bias=bias), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 10, bias=bias))

    def forward(self, x):
        return self.head(self.fpn(self.backbone(x)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def net() -> TinyNet:
    return TinyNet()


@pytest.fixture
def module_map() -> mqat.ModuleMap:
    return mqat.ModuleMap(MODULES)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(8, 3, 8, 8)
