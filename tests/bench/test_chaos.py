"""The chaos soak's judge, ``check_record``, on a record written by the real tracker (stand-in
trials, a real SQLite store): whole, it finds nothing; each way of losing or doubling a record
is one line. The soak itself runs in tests/integration/test_chaos.py (slow)."""
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("mlflow")

from bench.chaos import EXPERIMENT, check_record
from tracking.live_table import LiveTable
from tracking.mlflow_tracker import MLflowTracker, default_uri


def _record(tmp_path):
    """Two trials of two stages each, logged as a live search logs them, the front registered."""
    tracker = MLflowTracker(uri=default_uri(tmp_path), experiment=EXPERIMENT, search_path=str(tmp_path),
                            table=LiveTable(tmp_path), params={"method": "mqat"}, artifacts={})
    tracker.setup()
    trials = []
    for k, (accuracy, compression) in enumerate([(0.5, 4.0), (0.3, 8.0)]):
        directory = tmp_path / f"train_mqat_{k}"
        directory.mkdir()
        stages = [{"stage": s, "accuracy": accuracy - 0.1 * (1 - s), "compression": compression,
                   "training_iteration": s + 1, "final": s == 1} for s in range(2)]
        (directory / "result.json").write_text("".join(json.dumps(r) + "\n" for r in stages))
        trial = SimpleNamespace(trial_id=f"t{k}", config={"bits_fpn": 4}, last_result=stages[-1], status="RUNNING",
                                local_path=str(directory), checkpoint=None, get_error=lambda: None)
        trials.append(trial)
        tracker.on_trial_start(0, trials, trial)
        for stage in stages:
            tracker.on_trial_result(0, trials, trial, stage)
        trial.status = "TERMINATED"
        tracker.on_trial_complete(0, trials, trial)
    tracker.on_experiment_end(trials)
    for trial in trials:
        tracker.client.set_tag(tracker.child(trial), "onnx", "true")
    tracker.register_front(list(tracker.table.rows.values()))
    return tracker


def test_a_whole_record_has_no_violation(tmp_path):
    _record(tmp_path)
    assert check_record(tmp_path, default_uri(tmp_path), trials=2) == []


def test_a_doubled_child_a_lost_hypervolume_step_and_a_missing_trial_are_each_found(tmp_path):
    tracker = _record(tmp_path)
    client, parent = tracker.client, tracker.parent()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "trial_id": "t0"})   # written twice
    client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "trial_id": "t9"})   # no such trial
    client.log_metric(parent, "hypervolume", 0.0, step=7)
    found = check_record(tmp_path, default_uri(tmp_path), trials=3)
    assert "table: 2 rows of 2 trials, 3 expected" in found
    assert "mlflow: trial t0 has 2 child runs" in found
    assert "mlflow: orphan child run of trial t9" in found
    assert any(v.startswith("mlflow: hypervolume steps [1, 2, 7]") for v in found), found
    assert "mlflow: the hypervolume fell between steps" in found


def test_a_stage_logged_twice_or_lost_and_a_wrong_pareto_tag_are_found(tmp_path):
    tracker = _record(tmp_path)
    child = tracker.child(SimpleNamespace(trial_id="t1"))
    tracker.client.log_metric(child, "accuracy", 0.9, step=1)           # stage 1 again
    tracker.client.set_tag(child, "pareto", "false")                     # the table marks it on the front
    found = check_record(tmp_path, default_uri(tmp_path), trials=2)
    assert "mlflow: trial t1's stages [0, 1, 1], it reported [0, 1]" in found
    assert "mlflow: trial t1 tagged pareto=false, the table says True" in found
