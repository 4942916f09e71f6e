"""The path a cluster user takes: a search on a two-node Ray cluster logs over HTTP to an MLflow
tracking server backed by PostgreSQL (or SQLite where PostgreSQL is not installed; see
bench/tracking_server.py), which serves the artifacts; another process then reads the runs, their
stages, the front's tags and the registry back through the REST API, and they match the table."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.processes import kill_all
from bench.tracking_server import tracking_server
from tests.integration.conftest import read_reports, short_ray_tmp, write_tiny_config

# The driver: a head that runs no trial and two one-CPU workers, the search through the CLI.
DRIVER = """
import sys
from search import ray_env; ray_env.apply()
from ray.cluster_utils import Cluster
from search.cli import main

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
for _ in range(2):
    cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
code = main(["search", "--config", sys.argv[1], "--address", cluster.address, "--quiet"])
import ray
ray.shutdown()
cluster.shutdown()
sys.exit(code)
"""

# Another process, as a user's notebook would: everything through the server's REST API.
READER = """
import json, sys
from pathlib import Path
import mlflow
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
experiment = client.get_experiment_by_name(sys.argv[2])
runs = client.search_runs([experiment.experiment_id])
children = [r for r in runs if "trial_id" in r.data.tags]
name = sys.argv[3]
parents = [r for r in runs if "trial_id" not in r.data.tags]
print(json.dumps({
    "parents": len(parents),
    "hypervolume_steps": [m.step for m in client.get_metric_history(parents[0].info.run_id, "hypervolume")],
    "children": {r.data.tags["trial_id"]: {
        "pareto": r.data.tags.get("pareto"),
        "status": r.info.status,
        "accuracy": [[m.step, m.value] for m in client.get_metric_history(r.info.run_id, "accuracy")],
        "artifacts": sorted(a.path for a in client.list_artifacts(r.info.run_id))} for r in children},
    "registry": {v.tags["trial_id"]: v.version for v in client.search_model_versions(f"name = '{name}'")},
    "front_1_onnx_bytes": 0 if not client.search_model_versions(f"name = '{name}'") else (Path(mlflow.artifacts.download_artifacts(
        client.get_model_version_download_uri(name, client.get_model_version_by_alias(name, "front-1").version),
        tracking_uri=sys.argv[1])) / "model.onnx").stat().st_size,
}))
"""


def _read_back(server, experiment_name: str, search: Path) -> dict:
    """What another process reads of the search through the server's REST API."""
    reader = subprocess.run([sys.executable, "-c", READER, server.uri, experiment_name, search.name],
                            capture_output=True, text=True, timeout=300, check=True)
    return json.loads(reader.stdout)


def _assert_server_holds_the_table(experiment: Path, seen: dict, trials: int) -> list[dict]:
    """One parent, one finished child a trial, each stage's accuracy once and equal to the trial's
    report, the front's tags and models, one hypervolume value a trial in order."""
    from tracking.table import read_table

    rows = read_table(experiment / "trials.parquet")
    assert len(rows) == trials and all(r["status"] == "finished" for r in rows)
    assert seen["parents"] == 1 and seen["hypervolume_steps"] == list(range(1, trials + 1))
    assert sorted(seen["children"]) == sorted(r["trial_id"] for r in rows)   # one child a trial
    for r in rows:
        child = seen["children"][r["trial_id"]]
        assert child["status"] == "FINISHED" and child["pareto"] == str(r["pareto"]).lower()
        first = {}                                         # each report's accuracy at its stage, once
        for report in read_reports(r["path"]):
            first.setdefault(int(report.get("stage", 0)), report["accuracy"])
        steps = [step for step, _ in child["accuracy"]]
        assert sorted(steps) == sorted(set(steps)) and dict(child["accuracy"]) == pytest.approx(first)
        if r["pareto"]:
            assert "onnx" in child["artifacts"] and "model" in child["artifacts"]  # on the server's store
    return rows


@pytest.mark.slow
def test_a_cluster_search_logs_to_a_postgres_backed_server_and_reads_back_over_rest(tmp_path):
    with tracking_server(tmp_path / "server") as (server, backend):
        print(f"tracking server backend: {backend}")  # PostgreSQL where installed (Debian's package)
        path = write_tiny_config(tmp_path, {"num_samples": 3, "max_concurrent": 2,
                                            "resources": {"cpus_per_trial": 1}, "storage": {"shared": True},
                                            "deploy": {"onnx": True}},
                                 tracking={"uri": server.uri, "experiment": "cluster-search"})
        ray_tmp = short_ray_tmp()
        driver = subprocess.run([sys.executable, "-c", DRIVER, str(path)], check=False, capture_output=True, text=True,
                                env={**os.environ, "RAY_TMPDIR": ray_tmp}, timeout=900, start_new_session=True)
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        assert driver.returncode == 0, driver.stderr[-3000:]
        (experiment,) = (tmp_path / "out" / "ray").glob("tiny-*")
        seen = _read_back(server, "cluster-search", experiment)

    rows = _assert_server_holds_the_table(experiment, seen, trials=3)
    assert sorted(seen["registry"]) == sorted(r["trial_id"] for r in rows if r["pareto"])  # the front, registered
    assert seen["front_1_onnx_bytes"] > 1000                     # and downloaded through the server


@pytest.mark.slow
def test_the_server_restarts_mid_search_and_every_record_reaches_it_once(tmp_path):
    """The tracking server killed once the first trial has reported, started again 10 s later:
    meanwhile the trials go on (their reports keep arriving: nothing waits on MLflow), and at the
    end the server holds every stage, tag, hypervolume value and model once."""
    with tracking_server(tmp_path / "server") as (server, _backend):
        path = write_tiny_config(tmp_path, {"num_samples": 4, "max_concurrent": 2, "deploy": {"onnx": True}},
                                 tracking={"uri": server.uri, "experiment": "restarts"})
        ray_tmp = short_ray_tmp()
        driver = subprocess.Popen([sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"],
                                  env={**os.environ, "RAY_TMPDIR": ray_tmp}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            reports = lambda: sum(len(read_reports(t)) for t in (tmp_path / "out" / "ray").glob("*/train_mqat_*"))
            deadline = time.monotonic() + 300
            while reports() == 0 and time.monotonic() < deadline and driver.poll() is None:
                time.sleep(0.2)
            server.stop()
            at_kill = reports()
            time.sleep(10)
            while_down = reports() - at_kill
            server.start()
            _, stderr = driver.communicate(timeout=900)
        finally:
            kill_all(session=driver.pid, path=ray_tmp)
            shutil.rmtree(ray_tmp, ignore_errors=True)
        assert at_kill > 0 and driver.returncode == 0, stderr[-3000:]
        assert while_down > 0, "no trial reported while the server was down: the search waited on MLflow"
        (experiment,) = (tmp_path / "out" / "ray").glob("tiny-*")
        seen = _read_back(server, "restarts", experiment)
    rows = _assert_server_holds_the_table(experiment, seen, trials=4)
    assert sorted(seen["registry"]) == sorted(r["trial_id"] for r in rows if r["pareto"])
