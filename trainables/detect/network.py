"""A YOLO-style single-stage detector: a strided backbone, an FPN + PAN neck over strides 8, 16
and 32, and one anchor-free head shared by the three levels (class scores, box distances)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MODULE_MAP = {"backbone": ["backbone."], "neck": ["neck."], "head": ["head."]}
STRIDES = (8, 16, 32)


def conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU(inplace=True))


class Backbone(nn.Module):
    """Five stride-2 stages (each a strided conv and a conv); returns strides 8, 16 and 32."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        stages, cin = [], 3
        for width in widths:
            stages.append(nn.Sequential(conv(cin, width, 2), conv(width, width)))
            cin = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out[2:]


class Neck(nn.Module):
    """FPN (top-down) then PAN (bottom-up), all at ``channels``."""

    def __init__(self, widths: tuple[int, ...], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(conv(w, channels, kernel=1) for w in widths[2:])
        self.top_down = nn.ModuleList(conv(channels, channels) for _ in range(2))
        self.down = nn.ModuleList(conv(channels, channels, 2) for _ in range(2))
        self.bottom_up = nn.ModuleList(conv(channels, channels) for _ in range(2))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        c3, c4, c5 = (lateral(f) for lateral, f in zip(self.lateral, features))
        p5 = c5
        p4 = self.top_down[0](c4 + F.interpolate(p5, size=c4.shape[-2:], mode="nearest"))
        p3 = self.top_down[1](c3 + F.interpolate(p4, size=c3.shape[-2:], mode="nearest"))
        n4 = self.bottom_up[0](p4 + self.down[0](p3))
        n5 = self.bottom_up[1](p5 + self.down[1](n4))
        return [p3, n4, n5]


class Head(nn.Module):
    """Shared by the levels: two convs per branch, then class logits and box distances."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.cls = nn.Sequential(conv(channels, channels), conv(channels, channels), nn.Conv2d(channels, classes, 1))
        self.box = nn.Sequential(conv(channels, channels), conv(channels, channels), nn.Conv2d(channels, 4, 1))
        prior = 0.01  # focal-loss initialisation: every location starts as background
        nn.init.constant_(self.cls[-1].bias, -float(torch.log(torch.tensor((1 - prior) / prior))))

    def forward(self, features: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        return [(self.cls(f), self.box(f)) for f in features]


class Detector(nn.Module):
    """Per level: class logits (N, C, H, W) and box distances (N, 4, H, W), left, top, right,
    bottom from the cell centre, in units of the level's stride, before ``exp``."""

    def __init__(self, classes: int, widths: tuple[int, ...], channels: int):
        super().__init__()
        self.backbone = Backbone(widths)
        self.neck = Neck(widths, channels)
        self.head = Head(channels, classes)

    def forward(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        return self.head(self.neck(self.backbone(x)))
