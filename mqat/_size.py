"""Size accounting: compression factor, BOPs and the packed size in bytes of a bit plan."""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._module_map import ModuleMap
from ._plan import FULL_PRECISION, BitPlan
from ._quantize import layer_bits

#: State-dict entries that hold quantizer or QC state rather than the network's own tensors.
_QUANT_STATE = ("weight_quant.", "act_quant.", "qc_gamma", "qc_beta")


@dataclass(frozen=True)
class ModuleSize:
    """One module: its weight count N_m and its weight-count-weighted mean weight bits."""

    weights: int
    bits: float
    bops: float | None = None


@dataclass(frozen=True)
class ModelSize:
    """What a bit plan costs. ``compression = 32 * sum N_m / sum b_m * N_m`` (weights only)."""

    modules: Mapping[str, ModuleSize]
    compression: float
    packed_bytes: int
    float_bytes: int
    bops: float | None

    @property
    def weights(self) -> int:
        return sum(m.weights for m in self.modules.values())

    def __str__(self) -> str:
        parts = ", ".join(f"{n}: {m.weights:,} w @ {m.bits:.3g} b" for n, m in self.modules.items())
        return f"{self.compression:.2f}x ({self.packed_bytes:,} B packed) [{parts}]"


def is_quant_state(name: str) -> bool:
    """Whether a state-dict key belongs to a quantizer or to QC (not to the float network)."""
    return any(part in name for part in _QUANT_STATE)


def packed_weight_bytes(bits: int, weight: Tensor) -> int:
    """Bytes of one layer's weight once packed: ``ceil(b * N / 8)`` plus float32 step sizes."""
    if bits >= FULL_PRECISION:
        return 4 * weight.numel()
    return math.ceil(bits * weight.numel() / 8) + 4 * weight.shape[0]


def _count_macs(model: nn.Module, example_input, names: set[str]) -> dict[str, float]:
    """Multiply-accumulates of each named conv/linear layer for one input (batch 1 equivalent)."""
    probe = copy.deepcopy(model).eval()
    macs: dict[str, float] = {}

    def hook(name):
        def record(layer, inputs, output):
            batch = output.shape[0] if output.dim() > 1 else 1
            per_output = layer.weight[0].numel()  # in_channels/groups * kernel area, or in_features
            macs[name] = output.numel() / batch * per_output
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in probe.named_modules() if n in names]
    with torch.no_grad():
        probe(example_input)
    for h in handles:
        h.remove()
    return macs


def model_size(model: nn.Module, plan: BitPlan, module_map: ModuleMap, *,
               example_input: Tensor | None = None) -> ModelSize:
    """Per-module weight counts and bits, compression, packed bytes and (with an input) BOPs.

    ``packed_bytes`` is what :func:`mqat.export_packed` writes as payload: each quantized weight
    at its bit-width with one float32 step per output channel, a float32 step per quantized
    input, and every other tensor of the state dict as stored. Works on a float model and on
    one already quantized. BOPs (``MACs * b_w * b_a``) need ``example_input``.
    """
    module_map.check_plan(plan)
    fixed_fp = module_map.fixed_fp_layers(model)
    grouped = module_map.layers(model)
    layer_names = {n for layers in grouped.values() for n, _ in layers}
    macs = _count_macs(model, example_input, layer_names) if example_input is not None else None

    modules: dict[str, ModuleSize] = {}
    packed = 0
    total_bops = 0.0
    for module, layers in grouped.items():
        n_weights, bit_weights, bops = 0, 0, 0.0
        for name, layer in layers:
            w_bits, a_bits = layer_bits(plan, module_map.unit_of(name, module), name, fixed_fp)
            weight = layer.weight
            assert isinstance(weight, Tensor)  # a conv's or a linear's
            n = weight.numel()
            n_weights += n
            bit_weights += w_bits * n
            packed += packed_weight_bytes(w_bits, weight) + (4 if a_bits < FULL_PRECISION else 0)
            if macs is not None:
                bops += macs.get(name, 0.0) * w_bits * a_bits
        modules[module] = ModuleSize(n_weights, bit_weights / max(n_weights, 1),
                                     bops if macs is not None else None)
        total_bops += bops

    quantizable_weights = {f"{n}.weight" for n in layer_names}
    for key, tensor in model.state_dict().items():
        if key not in quantizable_weights and not is_quant_state(key):
            packed += tensor.numel() * tensor.element_size()
    total_w = sum(m.weights for m in modules.values())
    total_bits = sum(m.weights * m.bits for m in modules.values())
    float_bytes = sum(t.numel() * t.element_size() for k, t in model.state_dict().items()
                      if not is_quant_state(k))
    return ModelSize(modules=modules, compression=FULL_PRECISION * total_w / total_bits,
                     packed_bytes=packed, float_bytes=float_bytes,
                     bops=total_bops if macs is not None else None)
