"""A trial whose worker dies is retried from its last stage checkpoint, in its own child run."""
from __future__ import annotations

import pytest

from tests.integration.conftest import read_reports


@pytest.mark.slow
def test_killed_trial_resumes_after_its_last_stage_in_the_same_child_run(ray_session, tiny_config, monkeypatch):
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking.mlflow_tracker import default_uri

    # the worker dies by SIGKILL in its first epoch after Tune holds its first stage checkpoint
    monkeypatch.setenv("MQAT_INJECT_FAULTS", "1:kill")
    config = tiny_config(search={"num_samples": 1, "max_concurrent": 1, "max_failures": 2,
                                 "targets": [4], "stage": {"images_per_epoch": 64}},
                         space={"epochs_per_stage": 2})
    result = run_search(config, progress=False, log=lambda *_: None)
    (row,) = result.rows
    assert row["status"] == "finished"
    reports = read_reports(row["path"])
    pids = [r["pid"] for r in reports]
    assert pids[0] != pids[1] == pids[-1], pids                  # a new worker after the first stage
    stages = [r.get("stage_name", r.get("name")) for r in reports]
    assert stages == row["order"].split(">") + (["qc"] if row["qc"] else []) + ["final"]  # none twice

    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    runs = client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(children[0].info.run_id, "accuracy")]
    assert sorted(steps) == list(range(len(stages))), steps              # each stage recorded once
