import itertools
import math

import pyarrow.parquet as pq

from tracking.plot import front_ticks, plot_front
from tracking.results import mark_front, row
from tracking.table import SCHEMA, read_table, write_table

#: The documented schema: changing it is a deliberate, visible act.
DOCUMENTED = [
    ("trial_id", "string"), ("status", "string"), ("error", "string"), ("ilp_seed", "bool"),
    ("seed", "int64"), ("pareto", "bool"), ("accuracy", "double"), ("accuracy_se", "double"),
    ("test_accuracy", "double"), ("test_accuracy_se", "double"), ("test_accuracy_onnx", "double"),
    ("test_accuracy_onnx_se", "double"),
    ("compression", "double"), ("model_bytes", "int64"), ("bops", "double"), ("onnx_bytes", "int64"), ("latency_ms", "double"),
    ("latency_ms_batch", "double"), ("latency_provider", "string"), ("fp_latency_ms", "double"),
    ("speedup_vs_fp", "double"), ("speedup_vs_fp_batch", "double"), ("accuracy_raw", "double"),
    ("accuracy_ema", "double"), ("accuracy_bn", "double"), ("accuracy_qc", "double"),
    ("oscillating_fraction", "double"), ("order", "string"), ("plan", "string"), ("ema", "bool"),
    ("ema_decay", "double"), ("qc", "bool"), ("qc_lr", "double"), ("bn", "bool"), ("lr", "double"),
    ("epochs_per_stage", "int64"), ("path", "string"),
]
CONFIG = {"order": "fpn>head>backbone", "bits_backbone": 4, "bits_fpn": 2, "bits_head": 4,
          "act_bits": 8, "ema": False, "qc": True, "qc_lr": 1e-3, "lr": 1e-3, "epochs_per_stage": 1}


def _rows():
    def metrics(acc, cf):
        return {"final": True, "accuracy": acc, "compression": cf, "model_bytes": 10,
                "metric/accuracy_se": 0.01}
    return mark_front([row("a", CONFIG, metrics(0.5, 4.0), error=None, seeds=[CONFIG]),
                       row("b", CONFIG, metrics(0.3, 8.0), error=None),
                       row("c", CONFIG, metrics(0.2, 6.0), error=None),
                       row("d", CONFIG, {}, error="RuntimeError: out of memory")])


def test_parquet_schema_is_stable_and_round_trips(tmp_path):
    assert [(f.name, str(f.type)) for f in SCHEMA] == DOCUMENTED
    rows = _rows()
    write_table(rows, tmp_path / "trials.parquet")
    table = pq.read_table(tmp_path / "trials.parquet")
    assert table.schema.equals(SCHEMA)
    again = read_table(tmp_path / "trials.parquet")
    assert [r["pareto"] for r in again] == [True, True, False, False]
    assert again[3]["status"] == "failed" and again[3]["accuracy"] is None
    assert list(tmp_path.iterdir()) == [tmp_path / "trials.parquet"]   # no temporary file left


def test_the_table_has_a_column_per_companion_metric_of_the_task(tmp_path):
    rows = _rows()
    rows[0]["map_50"] = 0.7
    write_table(rows, tmp_path / "trials.parquet", companions=["map_50"])
    table = pq.read_table(tmp_path / "trials.parquet")
    assert table.schema.names == SCHEMA.names + ["map_50"]
    assert [r["map_50"] for r in read_table(tmp_path / "trials.parquet")] == [0.7, None, None, None]


def test_a_live_table_rewrites_table_and_plot_after_every_trial(tmp_path):
    from types import SimpleNamespace

    from tracking.live_table import LiveTable
    from tracking.metric import Metric

    published = []
    table = LiveTable(tmp_path, metric=Metric("top-1", "top-1 accuracy", {"loss": "loss"}),
                      modules=["backbone", "fpn", "head"], publish=lambda: published.append(1))
    result = {"final": True, "accuracy": 0.5, "compression": 4.0, "model_bytes": 10, "metric/loss": 0.3}
    table.add(SimpleNamespace(trial_id="t1", config=CONFIG, last_result=result, local_path="/x"), error=None)
    table.add(SimpleNamespace(trial_id="t2", config=CONFIG, last_result={}, local_path="/y"), error="boom")
    rows = read_table(tmp_path / "trials.parquet")
    assert [(r["trial_id"], r["status"], r["pareto"], r["loss"]) for r in rows] == [
        ("t1", "finished", True, 0.3), ("t2", "failed", False, None)]
    assert (tmp_path / "pareto.png").is_file() and published == [1, 1]


def test_the_plot_is_redrawn_at_most_every_plot_every_s_but_the_table_every_time(tmp_path):
    from types import SimpleNamespace

    from tracking.live_table import LiveTable

    table = LiveTable(tmp_path, plot_every_s=3600)
    result = {"final": True, "accuracy": 0.5, "compression": 4.0, "model_bytes": 10}
    table.add(SimpleNamespace(trial_id="t1", config=CONFIG, last_result=result, local_path="/x"), error=None)
    first = (tmp_path / "pareto.png").stat().st_mtime_ns
    table.add(SimpleNamespace(trial_id="t2", config=CONFIG, last_result=result, local_path="/y"), error=None)
    assert len(read_table(tmp_path / "trials.parquet")) == 2            # the table: every trial
    assert (tmp_path / "pareto.png").stat().st_mtime_ns == first         # the plot: not yet due
    table.write(list(table.rows.values()), force=True)                   # the search's end
    assert (tmp_path / "pareto.png").stat().st_mtime_ns > first


def test_plot_is_a_png(tmp_path):
    path = plot_front(_rows(), tmp_path / "pareto.png", fp_accuracy=0.55)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_front_ticks_leave_room_for_every_label():
    # the case seen: 14.75x, 15.4x and 15.9x on one front print over each other
    front = [2.0, 4.1, 14.75, 15.4, 15.9]
    ticks = front_ticks(front, front + [3.0, 9.0])
    assert {2.0, 4.1, 14.8} <= set(ticks) and 15.4 not in ticks
    span = math.log10(15.9 / 2.0)
    assert all(math.log10(b / a) >= 0.07 * span for a, b in itertools.pairwise(ticks))
    # well spread points all keep their label, round values between them where there is room
    assert front_ticks([2.0, 4.0, 8.0], [2.0, 4.0, 8.0]) == [2.0, 3.0, 4.0, 6.0, 8.0]
    assert front_ticks([], []) == [1, 2, 4, 8, 16]


def test_ticks_read_across_every_trial_not_only_the_front():
    """Trials at 4-9x with a front only at 14-16x had no label between them (issue 21)."""
    every = [4.0, 4.5, 6.2, 7.9, 9.1, 14.6, 15.8]
    ticks = front_ticks([14.6, 15.8], every)
    assert 14.6 in ticks and {4.0, 6.0, 8.0} <= set(ticks)
    span = math.log10(15.8 / 4.0)
    assert all(math.log10(b / a) >= 0.07 * span for a, b in itertools.pairwise(ticks))
    assert front_ticks([], [3.0, 12.0]) == [3.0, 4.0, 6.0, 8.0, 12.0]
