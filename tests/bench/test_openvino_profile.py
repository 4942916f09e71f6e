"""The deploy bench's convolution ceiling, from OpenVINO's own per-node profile."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import mqat
from bench import deploy
from bench.openvino_profile import convolution_ceiling, node_times


def _export(model: nn.Module, path):
    mqat.export_onnx(model.eval(), path, example_input=torch.rand(1, 3, 16, 16))
    return path


def _net(convs: int) -> nn.Module:
    layers = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
    for _ in range(convs - 1):
        layers += [nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def test_node_times_sums_each_node_type_of_the_compiled_model(tmp_path):
    models = {"two": _export(_net(2), tmp_path / "two.onnx"), "one": _export(_net(1), tmp_path / "one.onnx")}
    both = node_times(models, (3, 16, 16), batch=2, turns=2, burst=2)
    assert set(both) == {"two", "one"}
    times = both["two"]
    assert times["Convolution"] > 0  # the ReLUs fuse into the convolutions: they are not nodes of their own
    assert "Relu" not in times and "Eltwise" not in times
    assert all(value >= 0 for value in times.values())


def test_the_ceiling_divides_fp_convolution_time_by_the_models_and_each_model_gets_a_row(tmp_path):
    assert convolution_ceiling({"Convolution": 300.0, "Reorder": 50.0}, {"Convolution": 200.0}) == 1.5
    models = {"FP": _export(_net(4), tmp_path / "fp.onnx"), "small": _export(_net(1), tmp_path / "small.onnx")}
    rows = deploy._ceiling_rows(models, (3, 16, 16), turns=2)
    assert [(r["batch"], r["what"]) for r in rows] == [
        (1, "openvino batch 1: small convolutions (ms)"), (8, "openvino batch 8: small convolutions (ms)")]
    for r in rows:
        fp_ms = float(r["note"].split("convolutions ")[1].split(" ms")[0])
        assert r["ratio"] == pytest.approx(fp_ms / r["value"], rel=0.01)  # the note's FP over the row's
