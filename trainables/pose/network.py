"""A WDR-style single-stage pose network: ResNet-like backbone, FPN, keypoint head.

The three modules are named by attribute, ``backbone.``, ``fpn.`` and ``head.``, which is
what the task's module map says. The head predicts, at stride 4, one heatmap per 3D keypoint
and a sub-pixel offset (dx, dy) per keypoint.
"""
from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

MODULE_MAP = {"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]}
STRIDE = 4


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, 1, relu=False)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else _conv_bn(cin, cout, 1, stride, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Backbone(nn.Module):
    """Stem at stride 2, then four stages of basic blocks: features at strides 4, 8, 16, 32.

    The deep stages may be much wider than the first ones at little cost (they run on 8x8 and
    4x4 maps at 128 px), and they hold the global view that tells similar corners apart.
    """

    def __init__(self, widths: tuple[int, ...], depth: int):
        super().__init__()
        self.stem = _conv_bn(3, widths[0], 3, 2)
        stages, cin = [], widths[0]
        for cout in widths:
            blocks = [BasicBlock(cin, cout, 2)] + [BasicBlock(cout, cout, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.channels = list(widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class FPN(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling and addition, 3x3 smoothing at stride 4."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = _conv_bn(channels, channels, 3)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            x = lateral(feature) + F.interpolate(x, size=feature.shape[-2:], mode="nearest")
        return self.smooth(x)


class KeypointHead(nn.Module):
    def __init__(self, channels: int, keypoints: int):
        super().__init__()
        self.body = _conv_bn(channels, channels, 3)
        self.heatmap = nn.Conv2d(channels, keypoints, 1)
        self.offset = nn.Conv2d(channels, 2 * keypoints, 1)
        # CenterNet's prior: start with a heatmap probability of about 0.1 everywhere
        nn.init.constant_(self.heatmap.bias, -math.log((1 - 0.1) / 0.1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.body(x)
        return self.heatmap(x), self.offset(x)


class PoseNet(nn.Module):
    """Image (B, 3, S, S) -> heatmap logits (B, K, S/4, S/4), offsets (B, 2K, S/4, S/4)."""

    def __init__(self, *, keypoints: int = 11, widths: tuple[int, ...] = (16, 48, 128, 256),
                 depth: int = 1, fpn_channels: int = 32):
        super().__init__()
        self.backbone = Backbone(tuple(widths), depth)
        self.fpn = FPN(self.backbone.channels, fpn_channels)
        self.head = KeypointHead(fpn_channels, keypoints)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.fpn(self.backbone(x)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

