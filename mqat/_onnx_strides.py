"""A strided 1x1 convolution exported as a Slice and a 1x1 convolution of stride 1.

The two are the same function: a 1x1 kernel with no padding reads one pixel per output, so
taking every s-th pixel first and then convolving at stride 1 gives the same numbers. OpenVINO's
CPU plugin turns a strided 1x1 convolution into a pooling before it, which breaks its int8 path:
the residual shortcuts of the built-in backbone then ran as a reference-kernel Convert, a
Multiply and a bf16 convolution (about 15% of the quantized pose network's time at batch 8, read
from OpenVINO's per-layer profile). Sliced first, each shortcut runs as an int8 convolution.
"""
from __future__ import annotations

import numpy as np


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _strided_pointwise(node) -> list[int] | None:
    """The strides of a 1x1 convolution with no padding and a stride above 1, else None."""
    if node.op_type != "Conv":
        return None
    attributes = _attributes(node)
    kernel, strides = list(attributes.get("kernel_shape", [])), list(attributes.get("strides", []))
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    if not kernel or any(k != 1 for k in kernel) or all(s == 1 for s in strides) \
            or any(attributes.get("pads", [])) or auto_pad not in (b"NOTSET", "NOTSET"):
        return None
    return strides


def _slice_point(node, producers: dict, uses: dict):
    """The node whose first input is sliced: the activation's QuantizeLinear when its Q / DQ pair
    feeds this convolution alone (a smaller tensor to quantize), else the convolution itself."""
    dequantize = producers.get(node.input[0])
    if dequantize is None or dequantize.op_type != "DequantizeLinear" or uses[dequantize.output[0]] != 1:
        return node
    quantize = producers.get(dequantize.input[0])
    if quantize is None or quantize.op_type != "QuantizeLinear" or uses[quantize.output[0]] != 1:
        return node
    return quantize


def slice_strided_pointwise(model) -> int:
    """Rewrite each strided 1x1 convolution of ``model`` (an ``onnx.ModelProto``) in place as a
    Slice taking every s-th pixel and a convolution of stride 1; returns how many."""
    from onnx import helper, numpy_helper

    graph, count = model.graph, 0
    producers = {output: n for n in graph.node for output in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    for node in list(graph.node):
        strides = _strided_pointwise(node)
        if strides is None:
            continue
        target = _slice_point(node, producers, uses)
        prefix = f"{node.name or node.output[0]}::slice"
        spatial = len(strides)
        constants = {"starts": [0] * spatial, "ends": [np.iinfo(np.int64).max] * spatial,
                     "axes": list(range(2, 2 + spatial)), "steps": strides}
        for name, values in constants.items():
            graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), f"{prefix}_{name}"))
        sliced = f"{prefix}_output"
        graph.node.insert(list(graph.node).index(target), helper.make_node(
            "Slice", [target.input[0], *(f"{prefix}_{name}" for name in constants)], [sliced], name=prefix))
        target.input[0] = sliced
        for attribute in node.attribute:
            if attribute.name == "strides":
                attribute.ints[:] = [1] * spatial
        count += 1
    return count
