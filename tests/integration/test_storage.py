"""A multi-node search with results on the driver's own disk is refused in one line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import short_ray_tmp, write_tiny_config

SCRIPT = """
import sys
from search import ray_env; ray_env.apply()  # Ray's environment first
from ray.cluster_utils import Cluster
from search.cli import main
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
code = main(["search", "--config", sys.argv[1], "--address", cluster.address, "--quiet"])
import ray
ray.shutdown()          # disconnect the driver before the nodes go
cluster.shutdown()
sys.exit(code)
"""


@pytest.mark.slow
def test_two_nodes_and_local_storage_exit_2(tmp_path):
    path = write_tiny_config(tmp_path)
    ray_tmp = short_ray_tmp()
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=False, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "RAY_TMPDIR": ray_tmp})
    errors = [line for line in result.stderr.splitlines() if line.startswith("mqat:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and "the Ray cluster has 2 nodes" in errors[0]
    assert "search.storage.shared: true" in errors[0]
    assert not (tmp_path / "out").exists()          # no experiment directory, no MLflow store
