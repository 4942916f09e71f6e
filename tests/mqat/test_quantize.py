import pytest
import torch

import mqat
from tests.conftest import MODULES

PLAN = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 8}, act_bits=8)


def test_quantize_module_by_module_keeps_earlier_layers(net, module_map, batch):
    mqat.quantize_(net, PLAN, module_map, modules=["fpn"])
    fpn_layer = net.fpn[0]
    assert isinstance(fpn_layer, mqat.QuantConv2d) and fpn_layer.weight_quant.bits == 2
    assert not isinstance(net.backbone[3], mqat.QuantConv2d)
    net(batch)
    step = fpn_layer.weight_quant.step.detach().clone()
    mqat.quantize_(net, PLAN, module_map, modules=["head", "backbone"])
    assert net.fpn[0] is fpn_layer and torch.equal(fpn_layer.weight_quant.step.detach(), step)
    assert isinstance(net.head[1], mqat.QuantLinear) and net.head[1].weight_quant.bits == 8
    assert len(mqat.quantized_layers(net)) == 4


def test_quantize_returns_the_same_model_and_keeps_weights(net, module_map):
    weight = net.backbone[3].weight
    assert mqat.quantize_(net, PLAN, module_map) is net
    assert net.backbone[3].weight is weight


def test_full_precision_module_left_float(net, module_map):
    plan = mqat.BitPlan({"backbone": 32, "fpn": 2, "head": 32}, act_bits=32)
    mqat.quantize_(net, plan, module_map)
    assert [n for n, _ in mqat.quantized_layers(net)] == ["fpn.0"]
    assert net.fpn[0].act_quant is None


def test_compression_is_the_papers_formula(net, module_map):
    size = mqat.model_size(net, PLAN, module_map)
    n = {m: sum(l.weight.numel() for _, l in layers) for m, layers in module_map.layers(net).items()}
    expected = 32 * sum(n.values()) / (4 * n["backbone"] + 2 * n["fpn"] + 8 * n["head"])
    assert size.compression == pytest.approx(expected)
    assert {m: s.weights for m, s in size.modules.items()} == n


def test_paper_compression_figures():
    # CA-SpaceNet style: uniform 8-8-8 = 4x and 3-3-3 = 10.67x whatever the counts.
    from torch import nn
    model = nn.ModuleDict({"a": nn.Linear(100, 30), "b": nn.Linear(30, 20), "c": nn.Linear(20, 5)})
    mm = mqat.ModuleMap({"a": ["a"], "b": ["b"], "c": ["c"]})
    assert mqat.model_size(model, mqat.BitPlan(dict.fromkeys("abc", 8)), mm).compression == pytest.approx(4.0)
    assert mqat.model_size(model, mqat.BitPlan(dict.fromkeys("abc", 3)), mm).compression == pytest.approx(32 / 3)


def test_packed_bytes_count_weights_steps_and_other_tensors(net, module_map):
    plan = mqat.BitPlan({"backbone": 32, "fpn": 2, "head": 32}, act_bits=32)
    size = mqat.model_size(net, plan, module_map)
    fpn_weight = net.fpn[0].weight
    float_fpn = fpn_weight.numel() * 4
    expected = size.float_bytes - float_fpn + fpn_weight.numel() * 2 // 8 + 4 * fpn_weight.shape[0]
    assert size.packed_bytes == expected


def test_same_size_before_and_after_quantizing(net, module_map, batch):
    before = mqat.model_size(net, PLAN, module_map, example_input=batch)
    mqat.quantize_(net, PLAN, module_map)
    net(batch)
    after = mqat.model_size(net, PLAN, module_map, example_input=batch)
    assert (before.packed_bytes, before.compression, before.bops) == (after.packed_bytes, after.compression, after.bops)


def test_bops_are_macs_times_bits(net, module_map, batch):
    size = mqat.model_size(net, PLAN, module_map, example_input=batch)
    fpn_macs = 16 * 16 * 1 * 1 * 4 * 4  # cin * cout * k * k * output pixels
    assert size.modules["fpn"].bops == pytest.approx(fpn_macs * 2 * 8)
    head_macs = 256 * 10
    assert size.modules["head"].bops == pytest.approx(head_macs * 8 * 8)
    assert size.bops == pytest.approx(sum(m.bops for m in size.modules.values()))
    assert mqat.model_size(net, PLAN, module_map).bops is None


def test_fp_first_last_counts_those_layers_at_32_bits(net):
    mm = mqat.ModuleMap(MODULES, fp_first_last=True)
    plan = mqat.BitPlan(dict.fromkeys(["backbone", "fpn", "head"], 4))
    size = mqat.model_size(net, plan, mm)
    first, last = net.backbone[0].weight.numel(), net.head[1].weight.numel()
    total = sum(s.weights for s in size.modules.values())
    assert size.compression == pytest.approx(32 * total / (4 * (total - first - last) + 32 * (first + last)))
