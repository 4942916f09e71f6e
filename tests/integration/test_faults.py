"""Faults inside trials (a NaN loss, an out-of-memory error, an exception) fail those trials
alone: each is recorded as failed with its reason, and the search completes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def _num_failures(experiment: Path) -> dict[str, int]:
    """Trial id -> how many times Tune saw it fail, from the experiment's saved state."""
    (state,) = experiment.glob("experiment_state-*.json")
    out = {}
    for trial_json, metadata in json.loads(state.read_text())["trial_data"]:
        trial_id = json.loads(trial_json)["trial_id"] if isinstance(trial_json, str) else trial_json["trial_id"]
        meta = json.loads(metadata) if isinstance(metadata, str) else metadata
        out[trial_id] = meta["num_failures"]
    return out


@pytest.mark.slow
def test_nan_oom_and_exception_fail_alone_with_their_reasons(ray_session, tiny_config, monkeypatch):
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking.mlflow_tracker import default_uri
    from tracking.table import read_table
    from trainables.faults import trial_number

    monkeypatch.setenv("MQAT_INJECT_FAULTS", "2:nan,3:oom,4:error")
    config = tiny_config(search={"num_samples": 5, "max_concurrent": 2, "max_failures": 1})
    log: list[str] = []
    result = run_search(config, progress=True, log=log.append)

    by_number = {trial_number(Path(r["path"]).name, r["trial_id"]): r for r in result.rows}
    assert sorted(by_number) == [1, 2, 3, 4, 5]
    reasons = {"nan": "training loss became nan", "oom": "can't allocate memory",
               "error": "injected fault"}
    for number, kind in {2: "nan", 3: "oom", 4: "error"}.items():
        row = by_number[number]
        assert row["status"] == "failed" and reasons[kind] in row["error"], row
        assert row["accuracy"] is None and not row["pareto"]
    assert all(by_number[n]["status"] == "finished" for n in (1, 5))
    assert any("injecting faults" in line for line in log)

    # retried once (max_failures=1): the fault came back, so each failed twice; the others never
    numbers = {r["trial_id"]: number for number, r in by_number.items()}
    failures = {numbers[t]: n for t, n in _num_failures(result.path).items()}
    assert failures == {1: 0, 2: 2, 3: 2, 4: 2, 5: 0}

    table = read_table(result.path / "trials.parquet")
    assert sorted(r["trial_id"] for r in table) == sorted(r["trial_id"] for r in result.rows)
    assert {r["trial_id"]: r["status"] for r in table} == {r["trial_id"]: r["status"] for r in result.rows}

    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    runs = client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
    children = {r.data.tags["trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(children) == 5 == len([r for r in runs if "mlflow.parentRunId" in r.data.tags])
    for trial_id, run in children.items():
        number = numbers[trial_id]
        if number in (2, 3, 4):
            assert run.info.status == "FAILED" and run.data.tags["error"] == by_number[number]["error"]
        else:
            assert run.info.status == "FINISHED" and "error" not in run.data.tags
