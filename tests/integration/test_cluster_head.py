"""The cluster path end to end: a head and a worker started the way cluster.yaml starts them
(plain ``ray start --head``, then ``ray start --address``, with nothing of this project's
environment), and a search that joins them with ``--address``."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import short_ray_tmp, write_tiny_config
from tests.integration.processes import kill_all

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_commands() -> tuple[str, str]:
    """cluster.yaml's own `ray start` lines for the head and a worker."""
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "cluster.yaml").read_text())
    head = next(c for c in config["head_start_ray_commands"] if " start " in c)
    worker = next(c for c in config["worker_start_ray_commands"] if " start " in c)
    return head, worker


@pytest.mark.slow
def test_a_search_joins_a_head_started_as_cluster_yaml_starts_it(tmp_path):
    head_line, worker_line = _start_commands()
    assert "--head" in head_line and "--address=$RAY_HEAD_IP:6379" in worker_line
    port, ray_tmp = _free_port(), short_ray_tmp()
    # the nodes' environment: the machine's, without anything this project sets for its driver
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNE_"))}
    common = ["--temp-dir", ray_tmp, "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", "--num-cpus=0",
                        *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        path = write_tiny_config(tmp_path, {"num_samples": 2, "max_concurrent": 2, "targets": [4],
                                            "shared_storage": True})
        result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet",
                                 "--address", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_TMPDIR": ray_tmp})
    finally:
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto front of 2 finished trials (0 failed)" in result.stdout
