"""A Ray cluster made of this machine's processes, for the chaos soak: a head that runs no trial
and one-CPU worker nodes, kept alive by a process of its own so that a killed driver leaves it
running, as a real cluster outlives its driver. Ray's ``cluster_utils`` adds nodes from the main
thread only, so the keeper takes its orders through files: ``replace_node`` removes a worker as a
dying machine goes (its raylet killed, no graceful drain) and adds a fresh one, so the cluster
keeps its size.

    python -m bench.local_cluster DIR WORKERS     # the keeper (``LocalCluster`` starts it)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ADDRESS, STOP = "address", "stop"


class LocalCluster:
    """The driver's side: starts the keeper, gives its address, orders node replacements."""

    def __init__(self, root: Path, *, workers: int = 2, env: dict[str, str] | None = None):
        self.root, self.workers, self.env = Path(root), workers, env
        self.process: subprocess.Popen | None = None
        self._orders = 0

    def start(self, timeout: float = 240) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "keeper.log", "a") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bench.local_cluster", str(self.root),
                                             str(self.workers)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self._wait_for(self.root / ADDRESS, timeout)

    def replace_node(self, node_id: str | None = None, timeout: float = 180) -> str:
        """Kill the worker node ``node_id`` (or the oldest) and add a fresh one; returns the id of
        the node removed."""
        self._orders += 1
        order = self.root / f"order-{self._orders}"
        order.write_text(node_id or "")
        return self._wait_for(order.with_suffix(".done"), timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        (self.root / STOP).touch()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)

    def _wait_for(self, path: Path, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.is_file():
                return path.read_text()
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the cluster's keeper exited: {(self.root / 'keeper.log').read_text()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"the cluster's keeper wrote no {path.name} in {timeout} s")


def keep(root: Path, workers: int) -> None:
    """The keeper: the cluster up, then orders carried out until told to stop."""
    from search import ray_env

    ray_env.apply()  # Ray's environment before Ray starts
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head runs no trial
    nodes = [cluster.add_node(num_cpus=1) for _ in range(workers)]
    cluster.wait_for_nodes()
    (root / ADDRESS).write_text(cluster.address)
    done = 0
    while not (root / STOP).is_file():
        order = root / f"order-{done + 1}"
        if not order.is_file():
            time.sleep(0.1)
            continue
        wanted = order.read_text().strip()
        node = next((n for n in nodes if n.node_id == wanted), nodes[0])
        cluster.remove_node(node, allow_graceful=False)
        nodes.remove(node)
        nodes.append(cluster.add_node(num_cpus=1))
        cluster.wait_for_nodes()
        done += 1
        order.with_suffix(".done").write_text(node.node_id)
    cluster.shutdown()


if __name__ == "__main__":
    keep(Path(sys.argv[1]), int(sys.argv[2]))
