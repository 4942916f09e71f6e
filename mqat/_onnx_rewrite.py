"""The rewrite after ``torch.onnx.export``: each layer's Q / DQ inputs at their own bit-widths.

Each QuantizeLinear / DequantizeLinear the export made carries its layer's name in an attribute
(``mqat_layer``, removed here, as ONNX knows no such attribute). Its inputs are replaced
by fresh initializers (``<layer>::weight``, ``::weight_scale``, ``::input_scale``, ...: names no
torch module makes) built from the layer's deployment twin, typed at the layer's bits (the
exporter merges equal tensors across layers, so the exported ones cannot be retyped in place),
a ``Clip`` is put between Q and DQ where an activation's range has no ONNX type of its own, and
whatever the graph no longer uses is dropped.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_INT4_BITS = 4
#: How integers are stored: ``size``, at their own width where ONNX has a type (int4 for 2 to 4
#: bits, the smallest file); ``speed``, every integer in an 8-bit type with its values unchanged
#: (runtimes run int8 kernels on int8 tensors, and decompress int4 weights to float first).
LAYOUTS = ("speed", "size")


#: The attribute that names a Q / DQ node's layer between the export and the rewrite.
LAYER_ATTRIBUTE = "mqat_layer"


def _take_layer(node) -> str | None:
    """The layer a node was made for (its marker attribute, removed), or None."""
    for attribute in node.attribute:
        if attribute.name == LAYER_ATTRIBUTE:
            node.attribute.remove(attribute)
            return attribute.s.decode()
    return None


def _int_type(bits: int, signed: bool, layout: str = "size") -> tuple[int, type]:
    """The ONNX element type (and numpy type of its values) that holds ``bits``-bit integers."""
    from onnx import TensorProto

    if bits <= _INT4_BITS and layout == "size":
        return (TensorProto.INT4, np.int8) if signed else (TensorProto.UINT4, np.uint8)
    return (TensorProto.INT8, np.int8) if signed else (TensorProto.UINT8, np.uint8)


def _raw(values: np.ndarray, data_type: int) -> bytes:
    """Integers as ONNX stores them raw: a byte each, or two 4-bit values a byte (low nibble first)."""
    from onnx import TensorProto

    flat = values.reshape(-1).astype(np.int8 if data_type in (TensorProto.INT4, TensorProto.INT8) else np.uint8)
    if data_type not in (TensorProto.INT4, TensorProto.UINT4):
        return flat.tobytes()
    nibbles = (flat.view(np.uint8) & 0x0F).astype(np.uint8)
    if len(nibbles) % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


class _Graph:
    """Initializers and nodes added to an ONNX graph, each name made once."""

    def __init__(self, model):
        self.model, self.graph = model, model.graph
        self.names = {i.name for i in self.graph.initializer}

    def tensor(self, name: str, values: np.ndarray, data_type: int | None = None) -> str:
        """An initializer of ``values`` (stored as ``data_type``, raw bytes), once; its name."""
        from onnx import helper, numpy_helper

        if name not in self.names:
            if data_type is None:
                tensor = numpy_helper.from_array(values, name)
            else:
                tensor = helper.make_tensor(name, data_type, values.shape, _raw(values, data_type), raw=True)
            self.graph.initializer.append(tensor)
            self.names.add(name)
        return name


def _rewrite_weight(graph: _Graph, node, layer: str, twin: Any, layout: str) -> None:
    data_type, dtype = _int_type(twin.weight_bits, signed=True, layout=layout)
    integers = twin.weight_int.numpy().astype(dtype)
    node.input[0] = graph.tensor(f"{layer}::weight", integers, data_type)
    node.input[1] = graph.tensor(f"{layer}::weight_scale", twin.weight_scale.numpy())
    node.input[2] = graph.tensor(f"{layer}::weight_zero_point", np.zeros(integers.shape[0], dtype), data_type)


#: A signed activation held in 8 bits is stored unsigned, its zero point at 128: the same grid
#: (``q + 128`` in ``[0, 255]`` for ``q`` in ``[-128, 127]``), the integers x86 int8 kernels read
#: natively (u8 activations x s8 weights). Stored as int8 instead, OpenVINO 2026.4's low-precision
#: transformations mis-run a quantizer that reads a Concat (outputs off by 30-40% of their size
#: on a two-branch SiLU block; the quantized YOLOv8n scored 0.687 mAP there against 0.769 in
#: PyTorch and ONNX Runtime, and 0.769 with those transformations off).
_SIGNED_OFFSET = 128


def _act_inputs(graph: _Graph, layer: str, twin: Any, layout: str) -> tuple[str, str, int, tuple[int, int]]:
    """Scale and zero point of a layer's input quantizer, with its ONNX type and the range of its
    stored integers (shifted by :data:`_SIGNED_OFFSET` where a signed range is held in uint8)."""
    from onnx import TensorProto

    lo, hi = twin.act_range
    bits = int(np.log2(hi - lo + 1))
    data_type, dtype = _int_type(bits if bits == _INT4_BITS else 8, signed=lo < 0, layout=layout)
    zero_point = 0
    if data_type == TensorProto.INT8:
        data_type, dtype, zero_point = TensorProto.UINT8, np.uint8, _SIGNED_OFFSET
    scale = graph.tensor(f"{layer}::input_scale", twin.act_scale.numpy())
    zero = graph.tensor(f"{layer}::input_zero_point", np.array(zero_point, dtype), data_type)
    return scale, zero, bits, (lo + zero_point, hi + zero_point)


def _clip(graph: _Graph, quantize, layer: str, lo: int, hi: int) -> str:
    """A Clip of the stored integers to ``[lo, hi]`` after ``quantize``; its output name."""
    from onnx import helper

    dtype = np.int8 if lo < 0 else np.uint8
    low = graph.tensor(f"{layer}::input_min", np.array(lo, dtype))
    high = graph.tensor(f"{layer}::input_max", np.array(hi, dtype))
    output = f"{quantize.output[0]}_clipped"
    # named by its output: a layer shared across inputs (the detection head) is quantized once per use
    clip = helper.make_node("Clip", [quantize.output[0], low, high], [output], name=f"{output}/Clip")
    nodes = list(graph.graph.node)
    graph.graph.node.insert(nodes.index(quantize) + 1, clip)
    return output


def _prune(graph) -> None:
    """Drop nodes and initializers nothing reads (the exporter's merged copies, now unused)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {name for node in graph.node for name in node.input}
        dead = [node for node in graph.node if not any(o in used for o in node.output)]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def narrow_types(model, twins: Mapping[str, Any], opset: int, layout: str = "speed") -> None:
    """Give every Q / DQ node of ``model`` (an exported ONNX ModelProto) its layer's types in
    ``layout`` (:data:`LAYOUTS`), in place; raise the default-domain opset to ``opset``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, but got {layout!r}")
    graph = _Graph(model)
    nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in nodes:
        layer = _take_layer(node)
        if layer is None or layer not in twins:
            raise ValueError(f"the exported node {node.name!r} names no quantized layer ({layer!r})")
        twin = twins[layer]
        if node.op_type == "DequantizeLinear" and node.input[0] not in producers:  # a weight
            _rewrite_weight(graph, node, layer, twin, layout)
            continue
        scale, zero, bits, (lo, hi) = _act_inputs(graph, layer, twin, layout)
        node.input[1], node.input[2] = scale, zero
        typed = (8,) if layout == "speed" else (_INT4_BITS, 8)  # bit-widths with a type of their own
        if node.op_type == "DequantizeLinear" and bits not in typed:
            node.input[0] = _clip(graph, producers[node.input[0]], layer, lo, hi)
    _prune(model.graph)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset


def merge_shared_quantizers(model) -> int:
    """One ``QuantizeLinear -> (Clip) -> DequantizeLinear`` per tensor and step: chains that read
    the same tensor with equal steps (layers that share an input quantizer, each exported with its
    own copy) become one, every reader reading it, in place; returns how many were merged."""
    from onnx import numpy_helper

    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    def constant(name: str) -> tuple:
        array = values[name]
        return str(array.dtype), array.shape, array.tobytes()

    kept: dict[tuple, str] = {}
    renamed: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in producers:
            continue
        chain, source = [], producers[node.input[0]]
        if source.op_type == "Clip":
            chain.append(tuple(constant(n) for n in source.input[1:]))
            source = producers.get(source.input[0], source)
        if source.op_type != "QuantizeLinear" or any(n not in values for n in (*source.input[1:], *node.input[1:])):
            continue
        key = (source.input[0], *(constant(n) for n in source.input[1:]), *chain,
               *(constant(n) for n in node.input[1:]))
        renamed[node.output[0]] = kept.setdefault(key, node.output[0])
    merged = {old: new for old, new in renamed.items() if old != new}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = merged.get(name, name)
    _prune(graph)
    return len(merged)


def fold_batch_norms(model) -> int:
    """Fold each BatchNormalization that alone reads a quantized Conv's output into that Conv:
    ``BN(conv(x, W_int * s) + b) = conv(x, W_int * (a s)) + (a b + beta - a mean)``, with
    ``a = gamma / sqrt(var + eps)`` per output channel, so the integers stay as they are and only
    their per-channel steps and the bias change. Runtimes then see ``DQ -> Conv -> (Relu) -> Q``,
    the pattern they run as one int8 convolution (ONNX Runtime's QLinearConv). A channel with
    ``a <= 0`` would need a negative step: that BN is left in place. Returns how many were folded."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    helper_graph, folded = _Graph(model), 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv":
            continue
        weight = producers.get(conv.input[1])
        if weight is None or weight.op_type != "DequantizeLinear" or len(readers.get(conv.output[0], [])) != 1 \
                or any(name not in inits for name in bn.input[1:5]) or weight.input[1] not in inits:
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[name]).astype(np.float64) for name in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        a = gamma / np.sqrt(var + eps)
        if (a <= 0).any():
            continue
        scale = numpy_helper.to_array(inits[weight.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) \
            if len(conv.input) > 2 and conv.input[2] in inits else np.zeros_like(a)
        name = conv.output[0]
        weight.input[1] = helper_graph.tensor(f"{name}::folded_scale", (scale * a).astype(np.float32))
        folded_bias = helper_graph.tensor(f"{name}::folded_bias", (a * bias + beta - a * mean).astype(np.float32))
        if len(conv.input) > 2:
            conv.input[2] = folded_bias
        else:
            conv.input.append(folded_bias)
        conv.output[0] = bn.output[0]          # the conv now writes what the BN wrote
        graph.node.remove(bn)
        folded += 1
    _prune(graph)
    return folded
