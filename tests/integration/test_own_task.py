"""A user's task, in a file outside the project that no worker has on its path, searched as the
README says: named by ``module:Class`` in a config beside it, on a local Ray and on a two-node
cluster (Ray ships the file and the Python files beside it to the workers). A typo in the task's own keys is one line, exit 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.processes import kill_all, started_by
from tests.integration.conftest import plan_modules, read_reports, short_ray_tmp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes_task.py"


def _user_project(tmp_path: Path, **task_keys) -> Path:
    """``tmp_path/task``: the example task as ``my_shapes.py``, importing a sibling file of its
    own (``shapes_splits.py``, as a user's task imports its helpers), and a config beside it."""
    folder = tmp_path / "task"
    folder.mkdir(exist_ok=True)
    source = EXAMPLE.read_text()
    splits = 'SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}\n'
    assert splits in source
    (folder / "shapes_splits.py").write_text(splits)
    (folder / "my_shapes.py").write_text(source.replace(splits, "from shapes_splits import SPLIT_SEEDS\n"))
    config = {
        "name": "own", "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
        "task": {"name": "my_shapes:ShapesTask", "train_images": 256, "val_images": 128, "test_images": 128,
                 "width": 8, "batch_size": 32, **task_keys},
        "pretrain": {"epochs": 2, "require_above_baseline": False},  # a few seconds' model: shipping is the point
        "search": {"num_samples": 2, "max_concurrent": 2, "targets": [4], "sensitivity_batches": 1,
                   "stage": {"images_per_epoch": 128, "eval_images": 64, "calibration_batches": 2, "bn_batches": 2},
                   "storage": {"shared": True}},
        "space": {"weight_bits": [2, 4, 8], "epochs_per_stage": 1},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _elsewhere(tmp_path: Path) -> Path:
    """A working directory that is neither the project nor the task's folder."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return cwd


def _driver(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    """Run ``python args`` from a third directory with its own Ray temp dir; reap what it started."""
    ray_tmp = short_ray_tmp()
    process = subprocess.Popen([sys.executable, *args], cwd=_elsewhere(tmp_path), env={**os.environ, "RAY_TMPDIR": ray_tmp},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        kill_all(session=process.pid, path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not started_by(session=process.pid, path=ray_tmp)
    return process.returncode, stdout, stderr


def _check_search(tmp_path: Path, stdout: str) -> set[str]:
    """The search's record: two finished trials of the user's metric and modules; their nodes."""
    assert "accuracy = top-1 +- standard error" in stdout and "val top-1" in stdout
    (experiment,) = (tmp_path / "out" / "ray").glob("own-*")
    from tracking.table import read_table
    rows = read_table(experiment / "trials.parquet")
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert all(r["loss"] is not None for r in rows)                      # the task's companion metric
    assert all(plan_modules(r["plan"]) == ["backbone", "neck", "head"] for r in rows)
    assert json.loads((experiment / "task.json").read_text())["metric"]["name"] == "top-1"
    return {report["node_id"] for t in experiment.glob("train_mqat_*") for report in read_reports(t)}


@pytest.mark.slow
def test_a_task_file_outside_the_project_is_searched_on_a_local_ray(tmp_path):
    config = _user_project(tmp_path)
    code, stdout, stderr = _driver(["-m", "search.cli", "search", "--config", str(config), "--quiet"], tmp_path)
    assert code == 0, stderr[-3000:]
    _check_search(tmp_path, stdout)


def test_a_typo_in_the_tasks_own_keys_is_one_line_and_exit_2(tmp_path):
    config = _user_project(tmp_path, widht=8)
    result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(config), "--check"],
                            cwd=_elsewhere(tmp_path), check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["mqat: error: unknown key task.widht; did you mean 'width'?"]
    assert not (tmp_path / "out").exists()


# The driver of the cluster test: a head that runs no trial and two one-CPU workers on this
# machine, then the search through the command line's entry point.
SCRIPT = """
import json, sys
from search import ray_env; ray_env.apply()  # Ray's environment first
from ray.cluster_utils import Cluster
from search.cli import main

config, report = sys.argv[1], sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
code = main(["search", "--config", config, "--address", cluster.address, "--quiet"])
with open(report, "w") as f:
    json.dump({"code": code, "workers": [w.node_id for w in workers]}, f)
import ray
ray.shutdown()
cluster.shutdown()
sys.exit(code)
"""


@pytest.mark.slow
def test_a_task_file_outside_the_project_reaches_the_workers_of_a_cluster(tmp_path):
    config = _user_project(tmp_path)
    code, stdout, stderr = _driver(["-c", SCRIPT, str(config), str(tmp_path / "report.json")], tmp_path)
    assert code == 0, stderr[-3000:]
    workers = set(json.loads((tmp_path / "report.json").read_text())["workers"])
    nodes = _check_search(tmp_path, stdout)
    assert nodes and nodes <= workers                                    # trials ran on the worker nodes


def test_a_module_map_that_leaves_a_layer_out_is_one_line_and_exit_2(tmp_path):
    config = _user_project(tmp_path)
    task_file = config.parent / "my_shapes.py"
    full = '"neck": ["neck."], '
    assert full in task_file.read_text()
    task_file.write_text(task_file.read_text().replace(full, '"neck": ["neck.9."], '))  # names no layer
    result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(config), "--check"],
                            cwd=_elsewhere(tmp_path), check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("mqat: error: task 'my_shapes:ShapesTask': its module map does not fit its model: ")
    assert "layer 'neck.0' belongs to no module" in line
    assert not (tmp_path / "out").exists()
