"""mqat: Modular Quantization-Aware Training.

Quantize a modular network (backbone / FPN / head) one module at a time with LSQ, pick
per-module bit-widths by integer linear programming, and fight weight oscillations with an
EMA of the weights and QC, a post-QAT correction. Imports torch and PuLP only (ONNX export and
latency import onnx / onnxruntime when called).

Example::

    import mqat
    mm = mqat.ModuleMap({"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]})
    mqat.calibrate(mqat.quantize_(copy.deepcopy(model), plan_8bit, mm), train_inputs)   # PTQ
    table = mqat.sensitivity(model, mm, loss_fn=loss_fn, batches=val_batches)
    counts = {m: s.weights for m, s in mqat.model_size(model, plan_fp, mm).modules.items()}
    plan = mqat.solve_bit_plan(table, counts, target_compression=8)
    result = mqat.run_mqat(model, plan, mm, order=["fpn", "head", "backbone"],
                           train_epoch=train_epoch, evaluate=evaluate,
                           calibration_batches=train_inputs, bn_batches=train_inputs,
                           ema=mqat.EMAConfig(decay=0.999), qc=mqat.QCConfig(), seed=0)
    mqat.export_packed(result.model, plan, mm, "model.mqat")
    mqat.export_onnx(result.model, "model.onnx", example_input=val_inputs[0][:1])   # QDQ, opset 21
"""
from __future__ import annotations

from ._batchnorm import reestimate_bn
from ._calibrate import calibrate
from ._ema import EMAConfig, ModelEMA
from ._export import PackedModel, export_packed, load_packed
from ._files import atomic_write
from ._flow import CalibrationConfig, FlowState, MQATResult, StageResult, run_mqat, train_qc
from ._groups import GRANULARITIES, blocks, grouped
from ._ilp import max_compression, solve_bit_plan, solve_bit_plans
from ._latency import RUNTIMES, Latency, onnx_latencies, onnx_latency, resolve_runtime, runtime_available
from ._latency import runner as onnx_runner
from ._layers import QuantConv2d, QuantLinear
from ._lsq import LSQQuantizer, lsq_fake_quant, quant_range
from ._module_map import ModuleMap
from ._onnx import export_onnx
from ._onnx_model import OnnxModel
from ._onnx_rewrite import LAYOUTS
from ._oscillation import OscillationTracker
from ._plan import FULL_PRECISION, QUANT_BITS, VALID_BITS, BitPlan
from ._qc import QCConfig, add_qc, fold_qc
from ._quantize import quantize_, quantized_layers
from ._seed import derive_seed, seed_everything
from ._sensitivity import SensitivityTable, sensitivity
from ._shared_inputs import input_groups, share_input_quantizers
from ._size import ModelSize, ModuleSize, model_size

__all__ = [
    "FULL_PRECISION",
    "GRANULARITIES",
    "LAYOUTS",
    "QUANT_BITS",
    "RUNTIMES",
    "VALID_BITS",
    "BitPlan",
    "CalibrationConfig",
    "EMAConfig",
    "FlowState",
    "LSQQuantizer",
    "Latency",
    "MQATResult",
    "ModelEMA",
    "ModelSize",
    "ModuleMap",
    "ModuleSize",
    "OnnxModel",
    "OscillationTracker",
    "PackedModel",
    "QCConfig",
    "QuantConv2d",
    "QuantLinear",
    "SensitivityTable",
    "StageResult",
    "add_qc",
    "atomic_write",
    "blocks",
    "calibrate",
    "derive_seed",
    "export_onnx",
    "export_packed",
    "fold_qc",
    "grouped",
    "input_groups",
    "load_packed",
    "lsq_fake_quant",
    "max_compression",
    "model_size",
    "onnx_latencies",
    "onnx_latency",
    "onnx_runner",
    "quant_range",
    "quantize_",
    "quantized_layers",
    "reestimate_bn",
    "resolve_runtime",
    "run_mqat",
    "runtime_available",
    "seed_everything",
    "sensitivity",
    "share_input_quantizers",
    "solve_bit_plan",
    "solve_bit_plans",
    "train_qc",
]
