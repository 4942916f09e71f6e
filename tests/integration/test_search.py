"""A real Tune run: Optuna proposes, Ray runs two MQAT trials on a tiny pose task."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _reports(trial_path: str) -> list[dict]:
    lines = (Path(trial_path) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
def test_two_trial_search_reports_every_stage(ray_session, tiny_config):
    from search.run import run_search

    config = tiny_config()
    log = []
    result = run_search(config, progress=False, log=log.append)
    assert len(result.rows) == 2
    assert all(r["status"] == "finished" for r in result.rows), result.rows
    # the ILP seeds (deduplicated: with random weights two targets may share a plan) run first
    by_start = sorted(result.rows, key=lambda r: int(Path(r["path"]).name.split("_")[3]))
    seeds = len(result.prepared.seeds)
    assert seeds >= 1 and [r["seed"] for r in by_start] == [True] * seeds + [False] * (2 - seeds)
    for r in result.rows:
        stages = [rep.get("stage_name", rep.get("name")) for rep in _reports(r["path"])]
        expected = r["order"].split(">") + (["qc"] if r["qc"] else []) + ["final"]
        assert stages == expected
        assert 0.0 <= r["accuracy"] <= 1.0 and r["compression"] >= 4.0 * 0.999
    assert any(r["pareto"] for r in result.rows)
    finished = [line for line in log if re.search(r"ADD-0\.1d [\d.]+ at [\d.]+x \| front", line)]
    assert len(finished) == 2                           # one progress line per finished trial
    assert any(line.startswith("FP model: ADD-0.1d") for line in log)   # pretrained, figures shown

