import json

import pytest

import mqat


def test_round_trip_through_json():
    plan = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 8}, act_bits={"backbone": 8, "fpn": 4, "head": 32})
    again = mqat.BitPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert again.act_bits_of("fpn") == 4 and again.weight_bits["head"] == 8


def test_frozen():
    plan = mqat.BitPlan({"a": 4})
    with pytest.raises(AttributeError):
        plan.act_bits = 4
    with pytest.raises(TypeError):
        plan.weight_bits["a"] = 2


def test_restricted_to_sets_others_to_full_precision():
    plan = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 8}, act_bits=6)
    part = plan.restricted_to(["fpn"])
    assert dict(part.weight_bits) == {"backbone": 32, "fpn": 2, "head": 32}
    assert [part.act_bits_of(m) for m in ("backbone", "fpn", "head")] == [32, 6, 32]


@pytest.mark.parametrize("bad", [1, 9, "four", 2.0, None])
def test_bad_weight_bits_name_module_and_value(bad):
    with pytest.raises(ValueError, match=rf"'fpn'.*{bad!r}".replace("(", r"\(")):
        mqat.BitPlan({"backbone": 4, "fpn": bad})


@pytest.mark.parametrize("bad", [1, 9, "four"])
def test_bad_act_bits(bad):
    with pytest.raises(ValueError, match="act_bits"):
        mqat.BitPlan({"backbone": 4}, act_bits=bad)


def test_act_bits_dict_must_match_modules():
    with pytest.raises(ValueError, match=r"extra \['x'\] and lacks \['fpn'\]"):
        mqat.BitPlan({"backbone": 4, "fpn": 4}, act_bits={"backbone": 8, "x": 8})


def test_empty_plan_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        mqat.BitPlan({})


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="wbits"):
        mqat.BitPlan.from_dict({"wbits": {"a": 4}})
