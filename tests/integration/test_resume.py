"""Ctrl-C during a search, then ``mqat search --resume``: it completes, nothing finished reruns."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import short_ray_tmp, write_tiny_config


def _finished_trials(experiment: Path) -> dict[str, int]:
    """Trial directory -> number of final reports in its result.json."""
    out = {}
    for result in experiment.glob("train_mqat_*/result.json"):
        finals = sum(bool(json.loads(line).get("final")) for line in result.read_text().splitlines()
                     if line.strip())
        out[result.parent.name] = finals
    return out


@pytest.mark.slow
def test_interrupt_then_resume_completes_without_rerunning(tmp_path):
    path = write_tiny_config(tmp_path, {"num_samples": 5, "max_concurrent": 1})
    ray_tmp = short_ray_tmp()
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    command = [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        experiment = None
        while time.monotonic() < deadline:
            runs = list((tmp_path / "out" / "ray").glob("tiny-*"))
            if runs and sum(_finished_trials(runs[0]).values()) >= 2:
                experiment = runs[0]
                break
            time.sleep(0.5)
        assert experiment is not None, "no trial finished in time"
        os.killpg(first.pid, signal.SIGINT)              # what Ctrl-C in a terminal sends
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode != 0 and "--resume" in stderr
    before = {name: n for name, n in _finished_trials(experiment).items() if n}
    assert 2 <= len(before) < 5

    second = subprocess.run([*command, "--resume"], env=env, check=False, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    after = _finished_trials(experiment)
    assert len(after) == 5 and all(n == 1 for n in after.values())   # each trial finished once
    assert all(after[name] == 1 for name in before)                   # the earlier ones kept
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r.data.tags["trial_id"] for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 5 and len(set(children)) == 5            # no duplicate child run
    assert sum(r.data.tags.get("kind") == "search" for r in runs) == 1
    shutil.rmtree(ray_tmp, ignore_errors=True)
