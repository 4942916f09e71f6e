"""A local Ray listens on the loopback interface only, and serves no dashboard (Ray keeps a
``--minimal`` dashboard process for usage stats, which serves nothing)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from bench.processes import kill_all

SCRIPT = """
import json, os, sys
import psutil
from search.ray_env import init_ray
init_ray(None, num_cpus=1)
import ray
ray.get(ray.remote(lambda: 1).remote())          # a worker process too
tree = [psutil.Process(os.getpid())] + psutil.Process(os.getpid()).children(recursive=True)
pids = {p.pid for p in tree}
listening = [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
             if c.status == psutil.CONN_LISTEN and c.pid in pids]
names = [" ".join(p.cmdline()) for p in tree if p.is_running()]
print(json.dumps({"listening": listening, "processes": names}))
ray.shutdown()
"""


def test_local_ray_binds_loopback_only_without_dashboard():
    import json

    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        result = subprocess.run([sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True,
                                timeout=180, env={**os.environ, "RAY_TMPDIR": ray_tmp})
    finally:
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["listening"]) >= 3                      # GCS, raylet, workers
    assert {ip for ip, _ in report["listening"]} <= {"127.0.0.1", "::ffff:127.0.0.1"}, report
    assert 8265 not in {port for _, port in report["listening"]}          # the dashboard's port
    dashboards = [p for p in report["processes"] if "dashboard/dashboard.py" in p]
    assert all("--minimal" in p for p in dashboards), dashboards
