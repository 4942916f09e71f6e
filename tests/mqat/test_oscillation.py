import pytest
import torch
from torch import nn

import mqat


def _tracked_layer(trajectory_levels, momentum=0.5, threshold=0.3):
    """A one-weight quantized layer whose integer level follows the given trajectory."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False))
    mm = mqat.ModuleMap({"only": ["0"]})
    mqat.quantize_(model, mqat.BitPlan({"only": 4}, act_bits=32), mm)
    layer = model[0]
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.weight_quant.initialize(layer.weight)
    with torch.no_grad():
        layer.weight_quant.step.fill_(1.0)
    tracker = mqat.OscillationTracker(model, mm, momentum=momentum, threshold=threshold)
    for level in trajectory_levels:
        with torch.no_grad():
            layer.weight.fill_(float(level))
        tracker.update()
    return tracker


def test_counts_on_a_hand_made_trajectory():
    # levels 0 -> 1 -> 0 -> 1 -> 1 -> 2: changes +1, -1 (osc), +1 (osc), 0, +1 (same way)
    tracker = _tracked_layer([0, 1, 0, 1, 1, 2])
    state = next(iter(tracker._states.values()))
    f = 0.0
    for osc in [0, 1, 1, 0, 0]:  # one entry per step after the first
        f = 0.5 * osc + 0.5 * f
    assert state.frequency.item() == pytest.approx(f)
    assert f < 0.3 and tracker.overall() == 0.0


def test_fraction_above_threshold():
    tracker = _tracked_layer([0, 1, 0, 1, 0])  # oscillates every step after the first change
    assert tracker.overall() == 1.0
    assert tracker.fraction() == {"only": 1.0}


def test_monotone_drift_is_not_oscillation():
    tracker = _tracked_layer([-3, -2, -1, 0, 1, 2])
    assert next(iter(tracker._states.values())).frequency.item() == 0.0


def test_untracked_model_reports_zero(net, module_map):
    assert mqat.OscillationTracker(net, module_map).overall() == 0.0
