"""``quantize_``: swap the conv and linear layers of chosen modules for quantized ones, in place."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._layers import QUANT_LAYERS, QuantConv2d, QuantLinear, to_quant_layer
from ._module_map import ModuleMap
from ._plan import FULL_PRECISION, BitPlan


def layer_bits(plan: BitPlan, unit: str, layer_name: str, fixed_fp: set[str]) -> tuple[int, int]:
    """``(weight bits, input bits)`` of one layer: its unit's in the plan (its module's, or its
    group's), unless the layer is kept at FP."""
    if layer_name in fixed_fp:
        return FULL_PRECISION, FULL_PRECISION
    return plan.weight_bits[unit], plan.act_bits_of(unit)


def _set_submodule(model: nn.Module, name: str, layer: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, layer)


def quantize_(model: nn.Module, plan: BitPlan, module_map: ModuleMap, *,
              modules: Sequence[str] | None = None) -> nn.Module:
    """Quantize the layers of ``modules`` (all modules by default) in place, as ``plan`` says
    (bits per module, or per group of a module where the map has groups).

    Layers already quantized are kept as they are (with their learned step sizes), so the
    gradated flow calls this once per stage. Modules at 32 bits for weights and inputs stay
    float. Returns ``model``.

    Example::

        quantize_(model, BitPlan({"backbone": 8, "fpn": 2, "head": 8}), module_map,
                  modules=["fpn"])
    """
    module_map.check_plan(plan)
    chosen = module_map.names if modules is None else module_map.check_modules(modules)
    fixed_fp = module_map.fixed_fp_layers(model)
    grouped = module_map.layers(model)
    for module in chosen:
        for name, layer in grouped[module]:
            if isinstance(layer, QUANT_LAYERS):
                continue
            w_bits, a_bits = layer_bits(plan, module_map.unit_of(name, module), name, fixed_fp)
            if w_bits >= FULL_PRECISION and a_bits >= FULL_PRECISION:
                continue
            _set_submodule(model, name, to_quant_layer(layer, weight_bits=w_bits, act_bits=a_bits))
    return model


def quantized_layers(model: nn.Module) -> list[tuple[str, QuantConv2d | QuantLinear]]:
    """The ``(name, layer)`` pairs of every quantized layer of ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]
