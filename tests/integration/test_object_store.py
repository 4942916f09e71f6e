"""A search whose search.storage.path is an object store (``s3://``), here a local S3-compatible server
(moto's), through the command line as a user runs it: Tune keeps its trials and checkpoints in
the bucket, a trial whose worker dies resumes from its checkpoint there, the driver's table and
plot are copied up, and ``--resume`` and ``mqat report`` find the search by its URI. A wrong
endpoint or bucket is one line and exit status 2 before anything is written."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.processes import kill_all, started_by
from tests.integration.conftest import short_ray_tmp, write_tiny_config

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mqat-test", "AWS_SECRET_ACCESS_KEY": "mqat-test",
               "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "mqat-results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A fresh S3-compatible server on 127.0.0.1 with one empty bucket; killed by pid after."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    from pyarrow import fs
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                                allow_bucket_creation=True).create_dir(BUCKET)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()  # reaped, so it is gone from the process table
        kill_all(session=server.pid)


def _bucket_files(endpoint: str, prefix: str = BUCKET) -> list[str]:
    from pyarrow import fs
    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    return sorted(i.path for i in s3.get_file_info(fs.FileSelector(prefix, recursive=True))
                  if i.type == fs.FileType.File)


def _read(endpoint: str, path: str) -> bytes:
    from pyarrow import fs
    with fs.S3FileSystem(endpoint_override=endpoint, scheme="http").open_input_stream(path) as f:
        return f.read()


def _run(command, env, ray_tmp):
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        kill_all(session=process.pid, path=ray_tmp)
    assert not started_by(session=process.pid, path=ray_tmp)
    return process.returncode, stdout, stderr


@pytest.mark.slow
def test_search_on_an_object_store(tmp_path, s3_endpoint):
    uri = f"s3://{BUCKET}/searches?endpoint_override={s3_endpoint}&scheme=http"
    path = write_tiny_config(tmp_path, {"num_samples": 2, "max_concurrent": 1, "max_failures": 2,
                                        "targets": [4], "storage": {"path": uri}},
                             space={"epochs_per_stage": 3})
    ray_tmp = short_ray_tmp()
    # the first trial's worker dies by SIGKILL once Tune holds its first stage checkpoint
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "MQAT_INJECT_FAULTS": "1:kill"}
    command = [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"]
    code, stdout, stderr = _run(command, env, ray_tmp)
    assert code == 0, stderr[-3000:]

    # Tune kept everything in the bucket: nothing of it on the local disk
    files = _bucket_files(s3_endpoint)
    (experiment,) = {f.split("/")[2] for f in files}
    assert experiment.startswith("tiny-")
    assert f"search: s3://{BUCKET}/searches/{experiment}?" in stdout
    assert not (tmp_path / "out" / "ray").exists()
    root = f"{BUCKET}/searches/{experiment}"
    for name in ("trials.parquet", "pareto.png", "seeds.json", "fp_metrics.json"):
        assert f"{root}/{name}" in files, name
    trials = sorted({f.split("/")[3] for f in files if f.split("/")[3].startswith("train_mqat_")})
    assert len(trials) == 2
    for trial in trials:  # the final checkpoint holds the packed model
        assert any(f.startswith(f"{root}/{trial}/checkpoint_") and f.endswith("/model.mqat") for f in files)

    # the killed trial resumed from its checkpoint in the bucket, in a new worker: each stage once
    reports = {t: [json.loads(line) for line in _read(s3_endpoint, f"{root}/{t}/result.json").splitlines()]
               for t in trials}
    pids = {t: [r["pid"] for r in trial_reports] for t, trial_reports in reports.items()}
    (victim,) = [t for t in trials if t.split("_")[3] == "1"]
    assert pids[victim][0] != pids[victim][1] == pids[victim][-1], pids  # killed after its first stage
    for trial_reports in reports.values():
        stages = [r.get("stage_name", r.get("name")) for r in trial_reports]
        assert len(stages) == len(set(stages)) and stages[-1] == "final", stages

    # the table in the bucket is the driver's, with each trial once and its URI
    import io

    import pyarrow.parquet as pq
    table = pq.read_table(io.BytesIO(_read(s3_endpoint, f"{root}/trials.parquet"))).to_pylist()
    assert sorted(r["status"] for r in table) == ["finished", "finished"]
    assert all(r["path"].startswith(f"s3://{BUCKET}/searches/{experiment}/train_mqat_") for r in table)
    local = tmp_path / "out" / "searches" / experiment
    assert (local / "trials.parquet").read_bytes() == _read(s3_endpoint, f"{root}/trials.parquet")

    # MLflow names the search by its URI; --resume finds it there and reruns nothing
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "search"]
    assert parent.data.tags["search_path"].startswith(f"s3://{BUCKET}/searches/{experiment}?")
    for child in (r for r in runs if r.data.tags.get("kind") != "search"):   # each stage logged once
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert sorted(steps) == list(range(len(steps))), steps
    before = {t: _read(s3_endpoint, f"{root}/{t}/result.json") for t in trials}
    code, stdout, stderr = _run([*command, "--resume"], env, ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert code == 0, stderr[-3000:]
    assert {t: _read(s3_endpoint, f"{root}/{t}/result.json") for t in trials} == before

    # mqat report reads the search from the bucket and rewrites its table there
    report = subprocess.run([sys.executable, "-m", "search.cli", "report", parent.data.tags["search_path"]],
                            check=False, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "2 finished of 2 trials" in report.stdout
    rebuilt = pq.read_table(io.BytesIO(_read(s3_endpoint, f"{root}/trials.parquet"))).to_pylist()
    assert sorted(r["path"] for r in rebuilt) == sorted(r["path"] for r in table)


def test_object_store_is_checked_before_anything_is_written(tmp_path, s3_endpoint):
    path = write_tiny_config(tmp_path, {"storage": {"path": f"s3://{BUCKET}/searches?endpoint_override="
                                                                f"{s3_endpoint}&scheme=http"}})
    result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path),
                             "--check"], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "valid" in result.stdout, result.stderr[-2000:]
    for uri in (f"s3://no-such-bucket/searches?endpoint_override={s3_endpoint}&scheme=http",
                f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:{_free_port()}&scheme=http&connect_timeout=1"):
        path = write_tiny_config(tmp_path, {"storage": {"path": uri}})
        result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path),
                                 "--check"], check=False, capture_output=True, text=True, timeout=120)
        errors = [line for line in result.stderr.splitlines() if line.startswith("mqat:")]
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(errors) == 1 and "cannot reach search.storage.path" in errors[0], result.stderr
        assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    assert _bucket_files(s3_endpoint) == []                       # --check wrote nothing there
