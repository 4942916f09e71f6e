import pytest
from torch import nn

import mqat
from tests.conftest import MODULES, TinyNet


def test_layers_grouped_in_model_order(net, module_map):
    layers = module_map.layers(net)
    assert [n for n, _ in layers["backbone"]] == ["backbone.0", "backbone.3"]
    assert [n for n, _ in layers["fpn"]] == ["fpn.0"]
    assert [n for n, _ in layers["head"]] == ["head.1"]


def test_layer_in_no_module_is_named(net):
    mm = mqat.ModuleMap({"backbone": ["backbone."], "head": ["head."]})
    with pytest.raises(ValueError, match=r"'fpn\.0' belongs to no module"):
        mm.validate(net)


def test_layer_in_two_modules_is_named(net):
    mm = mqat.ModuleMap({"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."],
                         "all_convs": ["backbone.3"]})
    with pytest.raises(ValueError, match=r"'backbone\.3' belongs to several modules"):
        mm.validate(net)


def test_empty_map_rejected():
    with pytest.raises(ValueError, match="at least one module"):
        mqat.ModuleMap({})


def test_module_without_prefixes_rejected():
    with pytest.raises(ValueError, match="'fpn'"):
        mqat.ModuleMap({"backbone": ["backbone."], "fpn": []})


def test_plan_must_name_exactly_the_modules(module_map):
    with pytest.raises(ValueError, match=r"\['neck'\].*not in the module map"):
        module_map.check_plan(mqat.BitPlan({"backbone": 4, "fpn": 4, "head": 4, "neck": 4}))
    with pytest.raises(ValueError, match=r"no bits for module\(s\) \['head'\]"):
        module_map.check_plan(mqat.BitPlan({"backbone": 4, "fpn": 4}))


def test_unknown_module_in_quantize_call_named(net, module_map):
    plan = mqat.BitPlan({"backbone": 4, "fpn": 4, "head": 4})
    with pytest.raises(ValueError, match="'neck'"):
        mqat.quantize_(net, plan, module_map, modules=["neck"])


def test_fp_first_last_switch(net):
    mm = mqat.ModuleMap(MODULES, fp_first_last=True)
    assert mm.fixed_fp_layers(net) == {"backbone.0", "head.1"}
    mqat.quantize_(net, mqat.BitPlan({"backbone": 4, "fpn": 4, "head": 4}), mm)
    assert type(net.backbone[0]) is nn.Conv2d and type(net.head[1]) is nn.Linear
    assert isinstance(net.backbone[3], mqat.QuantConv2d)


def test_round_trip_dict():
    mm = mqat.ModuleMap(MODULES, fp_first_last=True)
    again = mqat.ModuleMap.from_dict(mm.to_dict())
    assert again.prefixes == mm.prefixes and again.fp_first_last
    assert isinstance(TinyNet(), nn.Module)
