"""Several searches at once on one store, as a team or a sweep of configs runs them: four tiny
searches started together with one output directory (so one new SQLite MLflow store) and one
MLflow experiment all finish, each with its own parent run and its own children."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from bench.processes import kill_all
from tests.integration.conftest import short_ray_tmp, write_tiny_config


@pytest.mark.slow
def test_four_searches_started_at_once_on_one_new_store_all_finish(tmp_path):
    names = ["team-a", "team-b", "team-c", "team-d"]
    configs = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        path = write_tiny_config(folder, {"num_samples": 1, "max_concurrent": 1, "targets": [4]},
                                 tracking={"experiment": "team"})
        data = yaml.safe_load(path.read_text())   # one cache and one output directory for all four
        data.update(name=name, cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"))
        path.write_text(yaml.safe_dump(data))
        configs.append(path)
    temps = [short_ray_tmp() for _ in names]
    processes = [subprocess.Popen([sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"],
                                  env={**os.environ, "RAY_TMPDIR": temp}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
                 for path, temp in zip(configs, temps)]
    try:
        outputs = [p.communicate(timeout=900) for p in processes]
    finally:
        for process, temp in zip(processes, temps):
            kill_all(session=process.pid, path=temp)
            shutil.rmtree(temp, ignore_errors=True)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]

    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "team"]
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("kind") == "search"}
    assert sorted(r.info.run_name.rsplit("-", 2)[0] for r in parents.values()) == names   # one parent each
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(c.data.tags["mlflow.parentRunId"] for c in children) == sorted(parents)  # one trial each
    assert all(r.info.status == "FINISHED" for r in runs)
