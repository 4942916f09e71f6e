"""Quantized conv and linear layers: LSQ on the weight (per output channel) and on the input."""
from __future__ import annotations

from typing import TypeVar

from torch import Tensor, nn
from torch.nn import functional as F

from ._lsq import LSQQuantizer
from ._plan import FULL_PRECISION

_Quant = TypeVar("_Quant", bound="_QuantMixin")


class _QuantMixin(nn.Module):
    """Weight and input quantizers, plus the optional per-channel QC affine on the output."""

    weight: Tensor
    bias: Tensor | None
    weight_quant: LSQQuantizer | None
    act_quant: LSQQuantizer | None
    qc_gamma: nn.Parameter | None
    qc_beta: nn.Parameter | None

    def _init_quant(self, out_channels: int, weight_bits: int, act_bits: int) -> None:
        self.weight_bits, self.act_bits = weight_bits, act_bits
        self.weight_quant = (None if weight_bits >= FULL_PRECISION else
                             LSQQuantizer(weight_bits, signed=True, per_channel=True,
                                          channels=out_channels))
        self.act_quant = (None if act_bits >= FULL_PRECISION else
                          LSQQuantizer(act_bits, signed=None, per_channel=False))
        # QC (post-QAT correction) parameters exist only while QC is being trained.
        self.register_parameter("qc_gamma", None)
        self.register_parameter("qc_beta", None)

    def quantized_weight(self) -> Tensor:
        """The fake-quantized weight this layer computes with."""
        return self.weight if self.weight_quant is None else self.weight_quant(self.weight)

    def _quant_input(self, x: Tensor) -> Tensor:
        return x if self.act_quant is None else self.act_quant(x)

    def _correct(self, out: Tensor) -> Tensor:
        if self.qc_gamma is None:
            return out
        shape = (1, -1) + (1,) * (out.dim() - 2)
        assert self.qc_beta is not None  # set together with qc_gamma
        return out * self.qc_gamma.view(shape) + self.qc_beta.view(shape)

    @classmethod
    def _adopt(cls, layer: nn.Conv2d | nn.Linear, quant: _Quant) -> _Quant:
        # Share the float layer's Parameter objects: the latent weights keep their identity.
        quant.weight = layer.weight
        quant.bias = layer.bias
        quant.train(layer.training)
        return quant


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with LSQ fake quantization of its weight and input activation.

    Build one from a float layer with :meth:`from_float`; ``weight_bits`` / ``act_bits`` of 32
    leave that side at full precision.
    """

    def __init__(self, *args, weight_bits: int = 8, act_bits: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(self.out_channels, weight_bits, act_bits)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, *, weight_bits: int, act_bits: int) -> QuantConv2d:
        w = conv.weight
        quant = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=w.device, dtype=w.dtype, weight_bits=weight_bits, act_bits=act_bits)
        return cls._adopt(conv, quant)

    def forward(self, x: Tensor) -> Tensor:
        out = self._conv_forward(self._quant_input(x), self.quantized_weight(), self.bias)
        return self._correct(out)


class QuantLinear(_QuantMixin, nn.Linear):  # type: ignore[misc]  # torch declares Linear.bias a Tensor, it may be None
    """``nn.Linear`` with LSQ fake quantization of its weight and input activation."""

    def __init__(self, *args, weight_bits: int = 8, act_bits: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(self.out_features, weight_bits, act_bits)

    @classmethod
    def from_float(cls, linear: nn.Linear, *, weight_bits: int, act_bits: int) -> QuantLinear:
        w = linear.weight
        quant = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    device=w.device, dtype=w.dtype, weight_bits=weight_bits, act_bits=act_bits)
        return cls._adopt(linear, quant)

    def forward(self, x: Tensor) -> Tensor:
        return self._correct(F.linear(self._quant_input(x), self.quantized_weight(), self.bias))


QUANT_LAYERS = (QuantConv2d, QuantLinear)


def to_quant_layer(layer: nn.Module, *, weight_bits: int, act_bits: int) -> nn.Module:
    """The quantized counterpart of a float ``nn.Conv2d`` or ``nn.Linear``."""
    if isinstance(layer, nn.Conv2d):
        return QuantConv2d.from_float(layer, weight_bits=weight_bits, act_bits=act_bits)
    if isinstance(layer, nn.Linear):
        return QuantLinear.from_float(layer, weight_bits=weight_bits, act_bits=act_bits)
    raise TypeError(f"cannot quantize a {type(layer).__name__}: only Conv2d and Linear")

