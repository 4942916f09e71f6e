import json

from tracking.metric import Metric
from tracking.results import FIELDS, format_front, mark_front, row

CONFIG = {"order": "fpn>head>backbone", "bits_backbone": 4, "bits_fpn": 2, "bits_head": 4,
          "act_bits": 8, "ema": True, "ema_decay": 0.999, "qc": False, "lr": 1e-3, "epochs_per_stage": 1}


def _metrics(acc, cf):
    return {"final": True, "accuracy": acc, "compression": cf, "model_bytes": 1000,
            "metric/accuracy_se": 0.01, "metric/add_auc": acc / 2}


def test_rows_have_the_fixed_fields_and_the_front_is_marked():
    modules = ["backbone", "fpn", "head"]
    rows = [row("a", CONFIG, _metrics(0.5, 4.0), error=None, seeds=[{"bits_fpn": 2}], modules=modules),
            row("b", CONFIG, _metrics(0.4, 3.0), error=None, modules=modules),
            row("c", CONFIG, _metrics(0.3, 9.0), error=None, modules=modules),
            row("d", CONFIG, {"accuracy": 0.9, "compression": 20.0}, error="FloatingPointError: nan", modules=modules)]
    mark_front(rows)
    assert all(tuple(r) == FIELDS for r in rows)
    assert [r["pareto"] for r in rows] == [True, False, True, False]
    assert [r["status"] for r in rows] == ["finished", "finished", "finished", "failed"]
    assert rows[3]["accuracy"] is None and rows[0]["ilp_seed"] and not rows[1]["ilp_seed"]
    assert json.loads(rows[0]["plan"])["weight_bits"] == {"backbone": 4, "fpn": 2, "head": 4}
    table = format_front(rows)
    assert table.index("4.00x") < table.index("9.00x") and "(ILP)" in table


def test_rows_keep_the_tasks_companions_and_the_networks_module_order():
    """A detector's neck sorts after its head: the plan keeps the network's order, not the
    alphabet (Tune writes a trial's config with its keys sorted)."""
    config = {"order": "neck>head>backbone", "bits_backbone": 8, "bits_head": 4, "bits_neck": 2, "act_bits": 8}
    metrics = {**_metrics(0.6, 5.0), "metric/map_50": 0.8}
    r = row("a", config, metrics, error=None, companions=["map_50"], modules=["backbone", "neck", "head"])
    assert r["map_50"] == 0.8 and tuple(r)[:len(FIELDS)] == FIELDS
    assert list(json.loads(r["plan"])["weight_bits"]) == ["backbone", "neck", "head"]
    r["pareto"] = True
    table = format_front([r], Metric("mAP", "mAP@[.5:.95]"))
    assert "val mAP" in table and "test mAP" in table and " 8-2-4 " in table and "backbone-neck-head" in table
    never_started = row("b", {}, {}, error="cancelled", modules=["backbone", "neck", "head"])
    assert never_started["status"] == "failed" and json.loads(never_started["plan"])["weight_bits"] == {}


def test_the_slower_than_fp_note_suggests_openvino_only_where_it_was_not_the_runtime():
    """The quickstart run in OpenVINO printed "try search.deploy.runtime: openvino"."""
    def timed(provider):
        metrics = {**_metrics(0.5, 4.0), "latency_ms": 2.0, "fp_latency_ms": 1.0, "speedup_vs_fp": 0.5,
                   "latency_provider": provider}
        r = row("a", CONFIG, metrics, error=None, modules=["backbone", "fpn", "head"])
        r["pareto"] = True
        return format_front([r])

    assert "1 of 1 front models run slower than the FP model in CPUExecutionProvider (x FP below 1); " \
           "try search.deploy.runtime: openvino" in timed("CPUExecutionProvider")
    in_openvino = timed("openvino:CPU (bf16 floats)")
    assert "run slower than the FP model in openvino:CPU" in in_openvino and "try search.deploy.runtime" not in in_openvino


def test_a_group_plans_bits_read_by_module():
    from tracking.results import _bits, _bits_legend

    bits = {"backbone.stages.0": 8, "backbone.stages.3.0.conv2": 2, "fpn.lateral.0": 6, "head.body": 4}
    assert _bits(bits) == "8-2/6/4" and _bits({"backbone": 4, "fpn": 2, "head": 8}) == "4-2-8"
    assert _bits_legend(list(bits)) == "backbone (2 groups)/fpn (1 group)/head (1 group)"


def test_a_front_model_that_loses_accuracy_in_its_runtime_is_named_in_a_note():
    """The YOLO front scored 0.769 +- 0.009 in PyTorch and 0.687 +- 0.007 from its ONNX file in
    OpenVINO: the table showed it, nothing said it."""
    def front(deployed, provider="openvino:CPU (bf16 floats)"):
        metrics = {**_metrics(0.5, 4.0), "latency_ms": 1.0, "fp_latency_ms": 1.2, "speedup_vs_fp": 1.2,
                   "latency_provider": provider}
        r = row("a", CONFIG, metrics, error=None, modules=["backbone", "fpn", "head"])
        r.update(pareto=True, test_accuracy=0.769, test_accuracy_se=0.009, test_accuracy_onnx=deployed,
                 test_accuracy_onnx_se=0.007)
        return format_front([r])

    assert ("note: 1 of 1 front models score lower from their ONNX file in openvino:CPU (bf16 floats) than in "
            "PyTorch by more than two standard errors (test, in runtime); compare search.deploy.runtime: "
            "onnxruntime") in front(0.687)
    assert "score lower from their ONNX file" not in front(0.760)          # within noise: no note
    assert "compare search.deploy.runtime" not in front(0.687, "CPUExecutionProvider")
