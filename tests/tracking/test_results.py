import json

from tracking.results import FIELDS, format_front, mark_front, row

CONFIG = {"order": "fpn>head>backbone", "bits_backbone": 4, "bits_fpn": 2, "bits_head": 4,
          "act_bits": 8, "ema": True, "ema_decay": 0.999, "qc": False, "lr": 1e-3, "epochs_per_stage": 1}


def _metrics(acc, cf):
    return {"final": True, "accuracy": acc, "compression": cf, "model_bytes": 1000,
            "metric/accuracy_se": 0.01, "metric/add_auc": acc / 2}


def test_rows_have_the_fixed_fields_and_the_front_is_marked():
    rows = [row("a", CONFIG, _metrics(0.5, 4.0), error=None, seeds=[{"bits_fpn": 2}]),
            row("b", CONFIG, _metrics(0.4, 3.0), error=None),
            row("c", CONFIG, _metrics(0.3, 9.0), error=None),
            row("d", CONFIG, {"accuracy": 0.9, "compression": 20.0}, error="FloatingPointError: nan")]
    mark_front(rows)
    assert all(tuple(r) == FIELDS for r in rows)
    assert [r["pareto"] for r in rows] == [True, False, True, False]
    assert [r["status"] for r in rows] == ["finished", "finished", "finished", "failed"]
    assert rows[3]["accuracy"] is None and rows[0]["ilp_seed"] and not rows[1]["ilp_seed"]
    assert json.loads(rows[0]["plan"])["weight_bits"] == {"backbone": 4, "fpn": 2, "head": 4}
    table = format_front(rows)
    assert table.index("4.00x") < table.index("9.00x") and "(ILP)" in table
