"""Export of a quantized model with its integer weights packed at their bit-widths.

File layout: the magic ``MQATPK1\\n``, an 8-byte little-endian header length, a JSON header
(plan, module map, quantizer flags, tensor directory), then the tensor payloads. A quantized
weight is stored as ``b``-bit unsigned codes ``q + Qn``, bit-packed, beside its float32
per-channel steps; every other state-dict tensor is stored as it is. Nothing is pickled, so
loading runs no code.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._files import atomic_write
from ._layers import QuantConv2d, QuantLinear
from ._module_map import ModuleMap
from ._plan import BitPlan
from ._quantize import quantize_, quantized_layers
from ._size import is_quant_state

MAGIC = b"MQATPK1\n"


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integer codes below ``2**bits`` into a little-endian bitstream."""
    planes = np.unpackbits(codes.astype(np.uint8)[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` codes as uint8."""
    planes = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: count * bits]
    return np.packbits(planes.reshape(count, bits), axis=1, bitorder="little")[:, 0]


@dataclass
class PackedModel:
    """A loaded export: the plan, the module map, quantizer flags and a loadable state dict."""

    plan: BitPlan
    module_map: ModuleMap
    quantizers: dict[str, dict[str, Any]]
    state_dict: dict[str, Tensor]

    def load_into(self, model: nn.Module) -> nn.Module:
        """Quantize a float ``model`` of the same architecture as the plan says and load into it.

        Layers that QC gave a bias (folding its offset) get one here too.
        """
        quantize_(model, self.plan, self.module_map)
        own = model.state_dict()
        for key, value in self.state_dict.items():
            if key.endswith(".bias") and key not in own:
                layer = model.get_submodule(key[: -len(".bias")])
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is None:
                    layer.bias = nn.Parameter(torch.zeros_like(value, device=layer.weight.device))
        model.load_state_dict(self.state_dict, strict=True)
        return model


def _raw(tensor: Tensor) -> tuple[dict, bytes]:
    t = tensor.detach().cpu().contiguous()
    data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {"kind": "raw", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}, data


def _packed(name: str, layer: QuantConv2d | QuantLinear) -> tuple[dict, bytes]:
    wq = layer.weight_quant
    assert wq is not None  # called for quantized weights only
    codes = (wq.integers(layer.weight) - wq.qmin).to(torch.uint8).cpu().numpy().reshape(-1)
    return ({"kind": "packed", "bits": wq.bits, "qmin": wq.qmin, "shape": list(layer.weight.shape),
             "step": f"{name}.weight_quant.step"}, pack_codes(codes, wq.bits))


def export_packed(model: nn.Module, plan: BitPlan, module_map: ModuleMap,
                  path: str | os.PathLike) -> int:
    """Write ``model`` (quantized with ``plan``) with packed integer weights; return the file size.

    The file is written to a temporary name and renamed, so a failure leaves nothing behind.
    Load it with :func:`load_packed`.
    """
    module_map.check_plan(plan)
    layers = dict(quantized_layers(model))
    quantizers: dict[str, dict[str, Any]] = {}
    packed_weights = {}
    for name, layer in layers.items():
        if layer.qc_gamma is not None:
            raise ValueError(f"layer {name!r} still has a QC correction: call fold_qc() first")
        flags = {}
        for side in ("weight_quant", "act_quant"):
            q = getattr(layer, side)
            if q is not None:
                if not q.is_initialized():
                    raise ValueError(f"{name}.{side} was never initialised: run a batch first")
                flags[side] = {"bits": q.bits, "signed": bool(q.signed)}
        quantizers[name] = flags
        if layer.weight_quant is not None:
            packed_weights[f"{name}.weight"] = name

    directory, blobs, offset = {}, [], 0
    for key, tensor in model.state_dict().items():
        if key.endswith(("initialized", "signed")) and is_quant_state(key):
            continue  # flags travel in the header
        if key in packed_weights:
            entry, data = _packed(packed_weights[key], layers[packed_weights[key]])
        else:
            entry, data = _raw(tensor)
        entry.update(offset=offset, nbytes=len(data))
        directory[key] = entry
        blobs.append(data)
        offset += len(data)
    header = json.dumps({"version": 1, "plan": plan.to_dict(), "module_map": module_map.to_dict(),
                         "quantizers": quantizers, "tensors": directory},
                        separators=(",", ":")).encode()
    def write(f) -> None:
        f.write(MAGIC + struct.pack("<Q", len(header)) + header)
        for data in blobs:
            f.write(data)
    return atomic_write(path, write).stat().st_size


def _read(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise ValueError(f"{path} is not an mqat packed model (bad magic bytes)")
    (length,) = struct.unpack("<Q", raw[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    try:
        header = json.loads(raw[start:start + length])
    except ValueError as err:
        raise ValueError(f"{path} has a corrupt header: {err}") from None
    return header, raw[start + length:]


def load_packed(path: str | os.PathLike, *, model: nn.Module | None = None):
    """Read an :func:`export_packed` file.

    With ``model`` (a float instance of the exported architecture) it is quantized, loaded and
    returned, computing exactly what the exported fake-quantized model computed. Without it, a
    :class:`PackedModel` is returned.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no packed model at {path}")
    header, payload = _read(path)
    tensors = header["tensors"]
    state: dict[str, Tensor] = {}
    for key, entry in tensors.items():
        data = payload[entry["offset"]:entry["offset"] + entry["nbytes"]]
        if entry["kind"] == "raw":
            dtype = getattr(torch, entry["dtype"])
            flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
            state[key] = flat.view(dtype).reshape(entry["shape"]).clone()
    for key, entry in tensors.items():
        if entry["kind"] == "packed":
            count = int(np.prod(entry["shape"]))
            codes = torch.from_numpy(unpack_codes(payload[entry["offset"]:entry["offset"] + entry["nbytes"]],
                                                  entry["bits"], count).astype(np.float32))
            step = state[entry["step"]].clamp_min(1e-8)
            levels = (codes + entry["qmin"]).reshape(entry["shape"])
            state[key] = levels * step.view(-1, *([1] * (levels.dim() - 1)))
    for layer, flags in header["quantizers"].items():
        for side, flag in flags.items():
            state[f"{layer}.{side}.initialized"] = torch.tensor(True)
            state[f"{layer}.{side}.signed"] = torch.tensor(flag["signed"])
    packed = PackedModel(BitPlan.from_dict(header["plan"]), ModuleMap.from_dict(header["module_map"]),
                         header["quantizers"], state)
    return packed if model is None else packed.load_into(model)
