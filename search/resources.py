"""What a search needs from the machines it runs on, checked before anything starts: directories
it can write, and a node with the CPUs and GPUs one trial asks for. Without these checks a search
fails after Ray has started, or waits forever for a trial that no node can hold."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from . import storage
from .config import Config, ConfigError

#: Written on the head by Ray's cluster launcher (``ray up``): its presence means an autoscaler
#: that may add nodes of the types it lists (Ray Tune itself checks for this file the same way).
LAUNCHER_CONFIG = "~/ray_bootstrap_config.yaml"


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(path: Path) -> str | None:
    """None if ``path`` is, or could be created as, a writable directory; else why not.

    Only an attempt tells: root passes every ``os.access`` test, even on /proc. The probe is an
    empty temporary directory, removed at once, in the nearest existing parent."""
    parent = _nearest_existing(path.resolve())
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mqat-probe-", dir=parent))
    except OSError as err:
        return f"cannot create anything in {parent} ({err.strerror or type(err).__name__})"
    return None


def check_writable(config: Config) -> None:
    """ConfigError unless every local directory the search writes can be written."""
    places = [("output_dir", config.output_dir), ("cache_dir", config.cache_dir)]
    if config.search.storage.path and not storage.is_uri(config.search.storage.path):
        places.append(("search.storage.path", config.search.storage.path))
    for key, place in places:
        reason = _writable_dir(Path(place))
        if reason:
            raise ConfigError(f"{key} {place!r} cannot be written: {reason}; choose a directory "
                              "you can write to")


def _fits(need: dict[str, float], have: dict[str, float]) -> bool:
    return all(have.get(kind, 0) >= amount for kind, amount in need.items() if amount > 0)


def _needs(config: Config) -> dict[str, float]:
    return {"CPU": config.search.resources.cpus_per_trial, "GPU": config.search.resources.gpus_per_trial}


def _fix() -> str:
    return "lower search.resources.cpus_per_trial / gpus_per_trial"


def check_local_resources(config: Config) -> None:
    """ConfigError unless this machine can hold one trial (a local Ray gets all its CPUs and the
    GPUs torch sees)."""
    need = _needs(config)
    have = {"CPU": os.cpu_count() or 1, "GPU": 0}
    if need["GPU"] > 0:
        import torch
        have["GPU"] = torch.cuda.device_count()
    if not _fits(need, have):
        raise ConfigError(
            f"a trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but this machine has "
            f"{have['CPU']} CPUs and {have['GPU']} GPUs: {_fix()}, or join a cluster with --address")


def _launcher_node_types() -> list[dict[str, float] | None] | None:
    """The resources of each node type the cluster's autoscaler may start (None where the file
    leaves them to be detected on the node), or None on a cluster without a launcher."""
    path = Path(LAUNCHER_CONFIG).expanduser()
    if not path.is_file():
        return None
    types = (yaml.safe_load(path.read_text()) or {}).get("available_node_types") or {}
    return [node.get("resources") or None for node in types.values()]


def check_cluster_resources(config: Config) -> None:
    """ConfigError unless a node of the running Ray cluster, or a node type its autoscaler may
    add, can hold one trial. Call after ``ray.init``."""
    import ray

    need = _needs(config)
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(_fits(need, have) for have in nodes):
        return
    launcher = _launcher_node_types()
    if launcher and any(have is None or _fits(need, have) for have in launcher):
        return  # the autoscaler can start such a node; search.pending_timeout_s bounds the wait
    cpus = max((have.get("CPU", 0) for have in nodes), default=0)
    gpus = max((have.get("GPU", 0) for have in nodes), default=0)
    raise ConfigError(
        f"a trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but no node of the Ray "
        f"cluster has that much (at most {cpus:g} CPUs and {gpus:g} GPUs on one "
        f"of its {len(nodes)} nodes): {_fix()}, or add a larger node")
