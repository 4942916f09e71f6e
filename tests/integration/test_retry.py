"""A trial whose worker dies is retried from its last stage checkpoint, in its own child run."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import read_reports


def _kill_after_first_checkpoint(root: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL this test's trial worker (the pid its own first report names, never another
    process on the machine) once its first stage checkpoint exists."""
    while not stop.is_set() and not killed:
        for checkpoint in root.glob("ray/*/train_mqat_*/checkpoint_000000"):
            reports = read_reports(checkpoint.parent)
            if reports:
                pid = reports[0]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_trial_resumes_after_its_last_stage_in_the_same_child_run(ray_session, tiny_config):
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking.mlflow_tracker import default_uri

    config = tiny_config(search={"num_samples": 1, "max_concurrent": 1, "max_failures": 2,
                                 "targets": [4], "images_per_epoch": 64},
                         space={"epochs_per_stage": 6})
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_after_first_checkpoint,
                               args=(Path(config.output_dir), killed, stop), daemon=True)
    watcher.start()
    try:
        result = run_search(config, progress=False, log=lambda *_: None)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert killed, "the trial finished before its worker could be killed"
    (row,) = result.rows
    assert row["status"] == "finished"
    reports = read_reports(row["path"])
    stages = [r.get("stage_name", r.get("name")) for r in reports]
    assert stages == row["order"].split(">") + (["qc"] if row["qc"] else []) + ["final"]  # none twice

    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    runs = client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 1 and children[0].info.status == "FINISHED"
