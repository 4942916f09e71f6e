"""One input quantizer per tensor that several layers read: found by a forward pass, shared across
the flow's stages, averaged once by the EMA, exported as one Quantize -> Dequantize."""
from __future__ import annotations

import collections
import copy

import torch

import mqat
from tests.mqat.test_onnx import DEEP, FUSED, assert_close, session
from trainables.pose.network import MODULE_MAP, PoseNet

STAGE1_INPUT = ("backbone.stages.1.0.conv1.0", "backbone.stages.1.0.shortcut.0", "fpn.lateral.0")


def _net(widths=(8, 8, 16, 16), fpn_channels=8):
    torch.manual_seed(0)
    return PoseNet(keypoints=4, widths=widths, fpn_channels=fpn_channels)


def test_the_readers_of_a_stage_output_are_found_by_one_forward_pass():
    groups = mqat.input_groups(_net(), torch.randn(1, 3, 64, 64))
    # each stage's output: the next block's conv and shortcut, and the FPN's lateral
    assert STAGE1_INPUT in groups
    assert all(len(g) > 1 for g in groups) and len({n for g in groups for n in g}) == sum(map(len, groups))


def _run(shared: bool, order=("fpn", "head", "backbone"), ema=None, **net):
    model = _net(**net)
    x = torch.rand(16, 3, 64, 64)
    module_map = mqat.ModuleMap(MODULE_MAP, fp_first_last=True)

    def train_epoch(net, optimizer, on_step):
        loss = sum(out.pow(2).mean() for out in net(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        on_step()
        return loss.item()

    groups = mqat.input_groups(model, x[:1]) if shared else None
    plan = mqat.BitPlan(dict.fromkeys(MODULE_MAP, 4), act_bits=8)
    result = mqat.run_mqat(model, plan, module_map, order=list(order), train_epoch=train_epoch,
                           evaluate=lambda net: 0.0, calibration_batches=[x], shared_inputs=groups, seed=0, ema=ema)
    return result, x


def test_the_readers_share_one_quantizer_which_the_first_quantized_reader_brought_and_keeps():
    result, _ = _run(shared=True)
    layers = dict(mqat.quantized_layers(result.model))
    quantizers = {layers[n].act_quant for n in STAGE1_INPUT}
    assert len(quantizers) == 1                         # one step for the tensor
    (quantizer,) = quantizers
    assert quantizer.is_initialized()
    separate, _ = _run(shared=False)
    layers = dict(mqat.quantized_layers(separate.model))
    assert len({layers[n].act_quant for n in STAGE1_INPUT}) == 3


def test_a_shared_quantizer_is_averaged_once_by_the_ema():
    model = _net()
    module_map = mqat.ModuleMap(MODULE_MAP, fp_first_last=True)
    mqat.quantize_(model, mqat.BitPlan(dict.fromkeys(MODULE_MAP, 4), act_bits=8), module_map)
    mqat.share_input_quantizers(model, mqat.input_groups(model, torch.rand(1, 3, 64, 64)))
    mqat.calibrate(model, [torch.rand(8, 3, 64, 64)])
    ema = mqat.ModelEMA(model, decay=0.5, warmup_steps=1)
    ema.update(model)
    layers = dict(mqat.quantized_layers(model))
    step = layers[STAGE1_INPUT[0]].act_quant.step
    before = step.detach().clone()
    with torch.no_grad():
        step.add_(1.0)                                   # the model moves by 1
    a = ema.decay_at(ema.updates)
    ema.update(model)
    shadow = dict(mqat.quantized_layers(ema.module))[STAGE1_INPUT[0]].act_quant.step
    assert torch.allclose(shadow, before + (1 - a) * 1.0)  # one lerp, not one per reader


def test_the_export_quantizes_a_shared_tensor_once_and_runs_as_the_model(tmp_path):
    result, x = _run(shared=True)
    model = result.model.eval()
    mqat.export_onnx(model, tmp_path / "m.onnx", example_input=x[:1])
    import onnx

    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    inputs = [n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(inputs) == len(set(inputs))               # one Quantize per tensor
    separate = copy.deepcopy(model)
    with torch.no_grad():
        expected = [t.numpy() for t in separate(x[:4])]
    assert_close(session(tmp_path / "m.onnx", optimized=False).run(None, {"input": x[:4].numpy()}), expected, DEEP)
    assert_close(session(tmp_path / "m.onnx").run(None, {"input": x[:4].numpy()}), expected, FUSED)


def _openvino_layers(path) -> collections.Counter:
    """(layer type, precision) of each node of OpenVINO's compiled graph, counted."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": 1})
    layers = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layers[(info["layerType"].astype(str), info["runtimePrecision"].astype(str))] += 1
    return layers


def test_openvino_runs_the_residual_and_fpn_adds_inside_int8_convolutions_and_fuses_shared_quantizers(tmp_path):
    """No float Add between int8 convolutions: each residual and FPN add runs as a post-op of the
    int8 convolution that produces one side; with one quantizer per tensor, the quantizers fuse
    into their producers too, where separate ones stay nodes of their own."""
    counts = {}
    for shared in (True, False):
        result, x = _run(shared=shared, widths=(16, 48, 128, 256), fpn_channels=32)  # the quickstart's widths
        mqat.export_onnx(result.model.eval(), tmp_path / f"{shared}.onnx", example_input=x[:1])
        counts[shared] = _openvino_layers(tmp_path / f"{shared}.onnx")
    quantized = len(mqat.quantized_layers(result.model))
    for layers in counts.values():
        assert not [kind for kind in layers if kind[0] in ("Eltwise", "Add")]
        assert sum(n for (kind, precision), n in layers.items() if kind == "Convolution" and precision in ("u8", "i8")) \
            == quantized
    fake_quantize = {shared: sum(n for (kind, _), n in layers.items() if kind == "FakeQuantize")
                     for shared, layers in counts.items()}
    # shared: only the head's (its body's output is read by the quantized heatmap and the float offset layer)
    assert fake_quantize[True] <= 1 < fake_quantize[False]
