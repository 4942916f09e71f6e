"""Objectives are data: every part that handles them reads the entries of ``OBJECTIVES``."""
import pytest

from tracking.mlflow_tracker import REGISTRY_TAGS, VIEW
from tracking.objectives import OBJECTIVES, check_objectives, maximised, metrics_and_modes, reference
from tracking.results import FIELDS, row
from tracking.table import SCHEMA


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_has_a_column_a_view_column_and_a_tag(name):
    key = OBJECTIVES[name].key
    assert key in FIELDS and key in SCHEMA.names
    assert f"metrics.`{key}`" in VIEW["selectedColumns"] and key in REGISTRY_TAGS
    # a finished trial's final report is what its row reads the objective from
    reported = row("t1", {"order": "a>b"}, {"final": True, key: 3.0}, error=None, modules=["a", "b"])
    assert reported[key] == 3.0


@pytest.mark.parametrize("name", [n for n in OBJECTIVES if n not in ("accuracy", "compression")])
def test_any_other_objective_may_follow_accuracy_and_compression(name):
    names = check_objectives(["accuracy", "compression", name])
    metrics, modes = metrics_and_modes(names)
    assert metrics == ["accuracy", "compression", OBJECTIVES[name].key]
    assert modes == ["max", "max", OBJECTIVES[name].mode]


def test_minimised_objectives_are_negated_and_the_reference_follows_the_fp_model():
    names = ("accuracy", "compression", "latency")
    assert maximised([{"accuracy": 0.5, "compression": 8.0, "latency_ms": 2.0}], names).tolist() == [[0.5, 8.0, -2.0]]
    assert reference(names, {"latency_ms": 1.5}) == (0.0, 1.0, -3.0)
    with pytest.raises(ValueError, match="the latency objective's reference needs the FP model's latency_ms"):
        reference(names, {})
