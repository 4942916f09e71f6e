"""ONNX export of a quantized model: QuantizeLinear / DequantizeLinear (QDQ) around each layer.

Each quantized layer becomes, in the graph, ``DequantizeLinear(integer weight, per-channel step)``
feeding its Conv or Gemm, and ``QuantizeLinear -> DequantizeLinear`` on its input, the
activation's step as the scale. In the ``speed`` layout (the default) every integer is stored in
an 8-bit type (int8 weights, uint8 activations: a signed one with its zero point at 128), the values within their own range, and a
``Clip`` on the integers between Q and DQ keeps an activation of fewer than 8 bits in range. In
the ``size`` layout, weights of 2 to 4 bits are int4 (opset 21) and 4-bit activations uint4 /
int4; the Clip is left for 2, 3, 5, 6 and 7 bits, for which ONNX has no type.
Layers kept at full precision stay float.

How: the layers are swapped for deployment twins whose quantize / dequantize steps are autograd
functions with an ONNX ``symbolic`` (the TorchScript exporter, opset 20), then the graph is
rewritten with ``onnx``: 4-bit tensors retyped, ``Clip`` inserted, opset raised to 21.
ONNX's QuantizeLinear divides by the scale where LSQ multiplies by its reciprocal; the two can
round a value lying on a rounding boundary to neighbouring levels, so outputs match to about one
step of a layer's activation, not bit for bit (see ``tests/mqat/test_onnx.py``).
"""
from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._files import atomic_write
from ._layers import QuantConv2d, QuantLinear
from ._onnx_rewrite import LAYER_ATTRIBUTE, fold_batch_norms, merge_shared_quantizers, narrow_types
from ._onnx_strides import slice_strided_pointwise
from ._qc import fold_qc
from ._quantize import quantized_layers

OPSET = 21
_EXPORT_OPSET = 20  # the TorchScript exporter's highest; raised to OPSET after the rewrite


class _QuantDequant(torch.autograd.Function):
    """Fake quantization ``clamp(round(x / s), lo, hi) * s`` (zero point 0), exported as Q -> DQ
    in 8-bit types (the rewrite narrows them to ``[lo, hi]``)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, zero_point: Tensor, lo: int, hi: int, layer: str) -> Tensor:
        return torch.round(x / scale).clamp(lo, hi) * scale

    @staticmethod
    def symbolic(g, x, scale, zero_point, lo, hi, layer):
        quantized = g.op("QuantizeLinear", x, scale, zero_point, **{LAYER_ATTRIBUTE + "_s": layer})
        return g.op("DequantizeLinear", quantized, scale, zero_point, **{LAYER_ATTRIBUTE + "_s": layer})


class _DequantWeight(torch.autograd.Function):
    """Integer weights times their per-output-channel steps, exported as one DequantizeLinear."""

    @staticmethod
    def forward(ctx, integers: Tensor, scale: Tensor, zero_point: Tensor, layer: str) -> Tensor:
        return integers.float() * scale.view(-1, *([1] * (integers.dim() - 1)))

    @staticmethod
    def symbolic(g, integers, scale, zero_point, layer):
        return g.op("DequantizeLinear", integers, scale, zero_point, axis_i=0, **{LAYER_ATTRIBUTE + "_s": layer})


class _Deployed(nn.Module):
    """A quantized layer as integers and scales: what its ONNX graph holds."""

    weight_int: Tensor
    weight_scale: Tensor
    weight_zero_point: Tensor
    weight_float: Tensor
    act_scale: Tensor
    act_zero_point: Tensor
    bias: Tensor | None

    def __init__(self, name: str, layer: QuantConv2d | QuantLinear):
        super().__init__()
        self.name = name
        wq, aq = layer.weight_quant, layer.act_quant
        if wq is not None:
            step = wq.step.detach().float().clamp_min(1e-8)
            self.register_buffer("weight_int", wq.integers(layer.weight).to(torch.int8))
            self.register_buffer("weight_scale", step)
            self.register_buffer("weight_zero_point", torch.zeros_like(step, dtype=torch.int8))
            self.weight_bits = wq.bits
        else:
            self.register_buffer("weight_float", layer.weight.detach().clone())
        self.act = aq
        if aq is not None:
            self.register_buffer("act_scale", aq.step.detach().float().clamp_min(1e-8).reshape(()))
            self.register_buffer("act_zero_point", torch.zeros((), dtype=torch.int8 if aq.qmin < 0 else torch.uint8))
            self.act_range = (aq.qmin, aq.qmax)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def _input(self, x: Tensor) -> Tensor:
        return x if self.act is None else _QuantDequant.apply(x, self.act_scale, self.act_zero_point, *self.act_range, self.name)

    def _weight(self) -> Tensor:
        if hasattr(self, "weight_float"):
            return self.weight_float
        return _DequantWeight.apply(self.weight_int, self.weight_scale, self.weight_zero_point, self.name)


class _DeployedConv2d(_Deployed):
    def __init__(self, name: str, layer: QuantConv2d):
        super().__init__(name, layer)
        self.stride, self.padding, self.dilation, self.groups = layer.stride, layer.padding, layer.dilation, layer.groups
        if layer.padding_mode != "zeros":
            raise ValueError(f"cannot export a conv with padding_mode={layer.padding_mode!r} (only 'zeros')")

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self._input(x), self._weight(), self.bias, self.stride,
                        self.padding,  # type: ignore[arg-type]  # "same" / "valid" are accepted too
                        self.dilation, self.groups)


class _DeployedLinear(_Deployed):
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self._input(x), self._weight(), self.bias)


def deployable(model: nn.Module) -> tuple[nn.Module, dict[str, _Deployed]]:
    """A copy of ``model`` (eval, CPU, QC folded) whose quantized layers are deployment twins;
    and the twins by layer name."""
    model = fold_qc(copy.deepcopy(model).cpu().eval())
    twins: dict[str, _Deployed] = {}
    for name, layer in quantized_layers(model):
        for side in ("weight_quant", "act_quant"):
            q = getattr(layer, side)
            if q is not None and not q.is_initialized():
                raise ValueError(f"{name}.{side} was never initialised: calibrate or run a batch first")
        twin = _DeployedConv2d(name, layer) if isinstance(layer, QuantConv2d) else _DeployedLinear(name, layer)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, twin)
        twins[name] = twin
    return model, twins


def _names(output, prefix: str = "output") -> list[str]:
    """Output names for a tensor or a (nested) tuple / list / dict of tensors, flattened."""
    if isinstance(output, Tensor):
        return [prefix]
    items = output.items() if isinstance(output, dict) else enumerate(output)
    return [name for key, value in items for name in _names(value, f"{prefix}_{key}" if prefix != "output"
                                                             or not isinstance(output, dict) else str(key))]


def export_onnx(model: nn.Module, path: str | os.PathLike, *, example_input: Tensor,
                dynamic_batch: bool = True, layout: str = "speed") -> int:
    """Write the quantized ``model`` as ONNX (opset 21) with QDQ nodes; return the file size.

    ``layout`` says how the integers are stored: ``"speed"`` (the default) keeps every weight and
    activation of 8 bits or fewer in an 8-bit type, its integer values unchanged, folds each
    BatchNorm after a quantized conv into that conv's per-channel steps and bias, and writes a
    strided 1x1 conv as a Slice and a conv of stride 1 (the same numbers), so that runtimes
    run their int8 kernels (OpenVINO decompresses int4 weights to float instead; a BN between a
    conv and its output's quantizer keeps ONNX Runtime from fusing them); ``"size"`` stores 2- to
    4-bit integers as int4, the smallest file, BN unfolded. The integers are the same, the outputs
    equal up to float rounding.

    ``example_input`` is one input batch (its values do not matter, its shape does); the batch
    dimension is left dynamic unless ``dynamic_batch`` is false. QC corrections are folded into
    the copy that is exported; ``model`` itself is not changed. The file is checked with
    ``onnx.checker`` and written atomically. Needs the ``onnx`` package.

    Example::

        mqat.export_onnx(result.model, "model.onnx", example_input=torch.zeros(1, 3, 128, 128))
        session = onnxruntime.InferenceSession("model.onnx")
        outputs = session.run(None, {"input": images.numpy()})
    """
    import onnx

    deploy, twins = deployable(model)
    example_input = example_input.detach().cpu()
    with torch.no_grad():
        outputs = deploy(example_input)
    output_names = _names(outputs)
    axes = {name: {0: "batch"} for name in ["input", *output_names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is chosen on purpose (its autograd-function symbolics make the QDQ
        # nodes); its deprecation notices are not for the user of this function
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(deploy, (example_input,), buffer,  # type: ignore[arg-type]  # a file object is documented
                          dynamo=False, opset_version=_EXPORT_OPSET,
                          input_names=["input"], output_names=output_names, dynamic_axes=axes,
                          do_constant_folding=True)
    graph = onnx.load_from_string(buffer.getvalue())
    narrow_types(graph, twins, OPSET, layout)
    merge_shared_quantizers(graph)
    if layout == "speed":
        fold_batch_norms(graph)
        slice_strided_pointwise(graph)
    onnx.checker.check_model(graph, full_check=True)
    data = graph.SerializeToString()
    return atomic_write(Path(path), lambda f: f.write(data)).stat().st_size
