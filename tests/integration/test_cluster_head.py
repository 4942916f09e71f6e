"""The cluster path end to end: a head and a worker started the way cluster.yaml starts them
(``ray start --head``, then ``ray start --address``, with cluster.yaml's environment and a shared
token, and nothing else of this project's), and a search that joins them with ``--address``.
A cluster without token authentication refuses the driver: one line, exit 2."""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.processes import kill_all
from tests.integration.conftest import short_ray_tmp, write_tiny_config

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_environment(line: str) -> dict[str, str]:
    """The NAME=value words before ``ray start`` in one of cluster.yaml's command lines."""
    words = shlex.split(line.split(";")[-1])
    return dict(w.split("=", 1) for w in words[:words.index(next(w for w in words if w.endswith("/ray")))])


def _cluster_yaml_environments() -> tuple[dict[str, str], dict[str, str]]:
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "cluster.yaml").read_text())
    head = next(c for c in config["head_start_ray_commands"] if " start " in c)
    worker = next(c for c in config["worker_start_ray_commands"] if " start " in c)
    assert "--head" in head and "--address=$RAY_HEAD_IP:6379" in worker
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"   # every node gets the token
    return _start_environment(head), _start_environment(worker)


def _search_on_nodes(tmp_path: Path, head_env: dict, worker_env: dict, driver_env: dict) -> subprocess.CompletedProcess:
    """Start a head (no CPUs) and a worker with these environments, then search through them
    from a driver with ``driver_env`` added to the machine's environment."""
    port, ray_tmp = _free_port(), short_ray_tmp()
    # the machine's environment, without anything this project sets for its driver; one token
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNE_"))}
    base["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    common = ["--temp-dir", ray_tmp, "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", "--num-cpus=0",
                        *common], env={**base, **head_env}, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", *common],
                       env={**base, **worker_env}, check=True, capture_output=True, timeout=120)
        path = write_tiny_config(tmp_path, {"num_samples": 2, "max_concurrent": 2, "targets": [4],
                                            "storage": {"shared": True}})
        return subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet",
                               "--address", f"127.0.0.1:{port}"], check=False, capture_output=True, text=True, timeout=600,
                              env={**base, **driver_env, "RAY_TMPDIR": ray_tmp})
    finally:
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_search_joins_a_cluster_started_as_cluster_yaml_starts_it(tmp_path):
    head_env, worker_env = _cluster_yaml_environments()
    assert head_env == worker_env == {"RAY_AUTH_MODE": "token"}
    result = _search_on_nodes(tmp_path, head_env, worker_env, {"RAY_AUTH_MODE": "token"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto front of 2 finished trials (0 failed)" in result.stdout


@pytest.mark.slow
def test_a_cluster_without_token_authentication_runs_the_search_of_a_plain_driver(tmp_path):
    """The driver sets token mode for its own local Ray only: joining, the cluster decides."""
    disabled = {"RAY_AUTH_MODE": "disabled"}
    result = _search_on_nodes(tmp_path, disabled, disabled, {})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto front of 2 finished trials (0 failed)" in result.stdout


@pytest.mark.slow
def test_a_token_cluster_refuses_a_driver_without_its_token_in_one_line(tmp_path):
    head_env, worker_env = _cluster_yaml_environments()
    result = _search_on_nodes(tmp_path, head_env, worker_env, {})
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("mqat:")]
    assert len(errors) == 1 and "cannot join the Ray cluster" in errors[0] \
        and "RAY_AUTH_MODE=token" in errors[0], result.stderr[-2000:]
