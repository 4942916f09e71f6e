"""search.scheduler: moasha in a real search: trials stopped at a rung are recorded as stopped
(table, MLflow, the searcher), stay off the front, and a stage budget ends the search."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_moasha_stops_trials_and_records_them(ray_session, tiny_config):
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking.mlflow_tracker import default_uri
    from tracking.table import read_table

    # one trial at a time: the order trials reach the rung, and so every decision, is fixed
    config = tiny_config(search={"num_samples": 6, "max_concurrent": 1, "deploy": {"onnx": False},
                                 "scheduler": {"name": "moasha", "rungs": [0], "eta": 2}})
    log = []
    result = run_search(config, progress=False, log=log.append)
    stopped = [r for r in result.rows if r["status"] == "stopped"]
    finished = [r for r in result.rows if r["status"] == "finished"]
    assert stopped and finished and len(stopped) + len(finished) == 6
    assert all(r["stopped_at_stage"] == 0 and r["accuracy"] is None and not r["pareto"] for r in stopped)
    table = {r["trial_id"]: r for r in read_table(result.path / "trials.parquet")}
    assert {t for t, r in table.items() if r["status"] == "stopped"} == {r["trial_id"] for r in stopped}

    # a stopped trial trained one stage and reported no final model
    for r in stopped:
        reports = [json.loads(x) for x in (Path(r["path"]) / "result.json").read_text().splitlines() if x.strip()]
        assert [x["stage"] for x in reports] == [0] and reports[-1]["early_stopped"]
        assert reports[-1]["compression"] == reports[-1]["plan_compression"]
    # the rung's records: every trial that reached stage 0, saved for a resumed driver
    saved = json.loads((result.path / "scheduler.json").read_text())
    assert set(saved["records"]["0"]) == {r["trial_id"] for r in result.rows}

    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    children = {r.data.tags["trial_id"]: r for r in client.search_runs(
        [client.get_experiment_by_name(config.name).experiment_id]) if "trial_id" in r.data.tags}
    for r in stopped:
        assert children[r["trial_id"]].info.status == "KILLED"
        assert children[r["trial_id"]].data.tags["early_stopped"] == "stage 0"
    assert all(children[r["trial_id"]].info.status == "FINISHED" for r in finished)
    assert any("stopped early after stage 0" in line for line in log)

    # the searcher was told the truth: a stopped trial is PRUNED in the Optuna study, not COMPLETE
    # at its accuracy after one module (what Ray's OptunaSearch tells by default)
    from optuna.trial import TrialState

    from search.searcher import Searcher
    searcher = Searcher()
    searcher.restore(str(max(Path(result.location).glob("searcher-state-*.pkl"))))
    state = {tid: searcher._ot_study.trials[t.number].state for tid, t in searcher._ot_trials.items()}
    assert {state[r["trial_id"]] for r in stopped} == {TrialState.PRUNED}
    assert {state[r["trial_id"]] for r in finished} == {TrialState.COMPLETE}


@pytest.mark.slow
def test_a_stage_budget_ends_the_search(ray_session, tiny_config):
    from search.run import run_search

    config = tiny_config(search={"num_samples": 8, "max_concurrent": 1, "scheduler": {"budget_trials": 2},
                                 "deploy": {"onnx": False}})
    result = run_search(config, progress=False, log=lambda *_: None)
    stages = 0
    for r in result.rows:
        if r["path"] and (Path(r["path"]) / "result.json").is_file():
            reports = [json.loads(x) for x in (Path(r["path"]) / "result.json").read_text().splitlines() if x.strip()]
            stages += sum(1 for x in reports if not x.get("final") and x["stage"] < 3)
    # 2 full trials are 6 module stages: the search stops there (the second trial finishing its
    # QC and scoring), far short of its 8 samples
    assert stages == 6
    assert sum(r["status"] == "finished" for r in result.rows) == 2 and len(result.rows) < 8
    assert result.budget_spent


@pytest.mark.slow
def test_a_search_ended_by_its_scheduler_or_budget_exits_0_with_a_summary(ray_session, tmp_path, capsys):
    """Trials the scheduler stopped, or a spent stage budget, are how such a search ends: not an
    interruption (it used to exit 130 and ask for --resume)."""
    from search.cli import main
    from tests.integration.conftest import write_tiny_config

    path = write_tiny_config(tmp_path, {"num_samples": 5, "max_concurrent": 1, "deploy": {"onnx": False},
                                        "scheduler": {"name": "moasha", "rungs": [0], "eta": 2}})
    assert main(["search", "--config", str(path), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "stopped early by the scheduler (after stage 0)" in out.out and "--resume" not in out.err

    (tmp_path / "budget").mkdir()
    budget = write_tiny_config(tmp_path / "budget", {"num_samples": 6, "max_concurrent": 1,
                                                     "scheduler": {"budget_trials": 1}, "deploy": {"onnx": False}})
    assert main(["search", "--config", str(budget), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "the stage budget of 1 full trials is spent" in out.out and "--resume" not in out.err
