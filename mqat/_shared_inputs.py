"""One input quantizer per tensor that several layers read.

A ResNet stage's output is read by the next block's first convolution, by its shortcut and by an
FPN lateral; each with a quantizer of its own, the tensor reaches the runtime through three
Quantize nodes of three steps, and none of them can fuse into the convolution that produced it.
Sharing one LSQ quantizer among the readers (one learned step, its gradient summed over them)
gives the tensor one step; the ONNX export then holds one Quantize -> Dequantize for it
(:func:`merge_shared_quantizers`), which a runtime can fuse into its producer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._layers import QuantConv2d, QuantLinear
from ._module_map import QUANTIZABLE
from ._quantize import quantized_layers


@torch.no_grad()
def input_groups(model: nn.Module, example_input: Tensor) -> list[tuple[str, ...]]:
    """The conv and linear layers that read the same input tensor, in groups of two or more, each
    in model order, from one forward pass of ``example_input`` (the model is left as it was).

    Example::

        mqat.input_groups(model, images[:1])
        # [('backbone.stages.1.0.conv1.0', 'backbone.stages.1.0.shortcut.0', 'fpn.lateral.0'), ...]
    """
    seen: dict[int, list[str]] = {}
    held: list[Tensor] = []  # kept alive: an id is a tensor's only while the tensor lives

    def record(name):
        def hook(layer, inputs):
            held.append(inputs[0])
            seen.setdefault(id(inputs[0]), []).append(name)
        return hook

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QUANTIZABLE)]
    order = {n: i for i, (n, _) in enumerate(layers)}
    handles = [m.register_forward_pre_hook(record(n)) for n, m in layers]
    was_training = model.training
    try:
        model.eval()
        model(example_input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    groups = [tuple(sorted(set(names), key=order.__getitem__)) for names in seen.values()]
    return sorted((g for g in groups if len(g) > 1), key=lambda g: order[g[0]])


def share_input_quantizers(model: nn.Module, groups: Sequence[Sequence[str]]) -> int:
    """Give the quantized layers of each group (:func:`input_groups`) one input quantizer, in
    place: the first one a layer of the group already had (earlier quantized layers keep their
    trained step), taken over by the others of the same bits. Returns how many layers took one."""
    quantized = dict(quantized_layers(model))
    taken = 0
    for group in groups:
        readers: list[QuantConv2d | QuantLinear] = [
            quantized[n] for n in group if n in quantized and quantized[n].act_quant is not None]
        if len(readers) < 2:
            continue
        owner = next((r.act_quant for r in readers if r.act_quant is not None and r.act_quant.is_initialized()),
                     readers[0].act_quant)
        assert owner is not None
        for reader in readers:
            if reader.act_quant is not owner and reader.act_bits == owner.bits:
                reader.act_quant = owner
                taken += 1
    return taken
