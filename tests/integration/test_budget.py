"""search.budget_trials in a real search: the stage budget ends the search, which exits 0 with a
summary (a spent budget is how such a search ends, not an interruption)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_stage_budget_ends_the_search(ray_session, tiny_config):
    from search.run import run_search

    config = tiny_config(search={"num_samples": 8, "max_concurrent": 1, "budget_trials": 2,
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
def test_a_search_ended_by_its_budget_exits_0_with_a_summary(ray_session, tmp_path, capsys):
    """It used to exit 130 and ask for --resume."""
    from search.cli import main
    from tests.integration.conftest import write_tiny_config

    budget = write_tiny_config(tmp_path, {"num_samples": 6, "max_concurrent": 1, "budget_trials": 1,
                                          "deploy": {"onnx": False}})
    assert main(["search", "--config", str(budget), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "the stage budget of 1 full trials is spent" in out.out and "--resume" not in out.err
