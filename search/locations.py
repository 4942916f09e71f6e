"""Where a config's searches live (``search.storage.path``), where the driver writes beside
them, and the checks that those places can be reached and written by every node."""
from __future__ import annotations

import re
from pathlib import Path

from . import storage
from .config import Config, ConfigError, first_line


def storage_root(config: Config) -> str:
    """Where Tune keeps the searches of a config: a directory, or an object-store URI."""
    root = config.search.storage.path or str(Path(config.output_dir) / "ray")
    return root if storage.is_uri(root) else str(Path(root).resolve())


def local_dir(config: Config, location: str) -> Path:
    """Where the driver writes a search's table, plot and seeds: the search itself when it is a
    directory, else a directory of the same name under ``output_dir``, copied up after writes."""
    if not storage.is_uri(location):
        return Path(location)
    return Path(config.output_dir).resolve() / "searches" / storage.name(location)


def latest_experiment(config: Config) -> str:
    """The newest search of this config's name: exactly ``<name>-YYYYmmdd-HHMMSS``, so config
    ``quickstart`` never resumes ``quickstart-gpu``'s searches."""
    root = storage_root(config)
    try:
        runs = storage.children(root, prefix=f"{config.name}-")
    except OSError as err:
        raise ConfigError(f"cannot read search.storage.path {root!r}: {first_line(err)}") from None
    own = re.compile(re.escape(config.name) + r"-\d{8}-\d{6}")
    runs = [run for run in runs if own.fullmatch(run)]
    if not runs:
        raise ConfigError(f"nothing to resume: no search of {config.name!r} under {root}")
    return storage.join(root, runs[-1])  # names end in their start time, so the last is the latest


def check_reachable(config: Config) -> None:
    """An object store is opened before anything runs: a wrong bucket, endpoint or credential
    is one line now, not a failed trial later."""
    root = storage_root(config)
    if storage.is_uri(root):
        try:
            storage.check_reachable(root)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot reach search.storage.path {root!r}: {first_line(err)}") from None


def check_shared(config: Config) -> None:
    """Refuse a multi-node cluster with results on this machine's own disk (workers could not
    write there, and the driver could not read their checkpoints). Call after ``ray.init``."""
    import ray

    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if nodes > 1 and not (config.search.storage.shared or storage.is_uri(storage_root(config))):
        raise ConfigError(
            f"search.storage.path {storage_root(config)!r} is on this machine, but the Ray "
            f"cluster has {nodes} nodes: put it on a filesystem every node mounts and set "
            "search.storage.shared: true, or use an object store (s3://bucket/path)")


def publish(path: Path, location: str) -> None:
    """Copy the driver's files of a search into its object-store location (none for a directory)."""
    from tracking.report import DRIVER_FILES

    if storage.is_uri(location):
        storage.upload([path / name for name in DRIVER_FILES], location)
