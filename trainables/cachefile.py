"""Cache files that are verified before use: the size and SHA-256 of each are recorded beside it
at write (``<file>.json``) and compared before it is read. A truncated or overwritten cache then
fails on the driver with its name, instead of failing every trial with a zip-reader error.

Hashing a large file takes seconds, so it happens on the driver, once per process and file
version; inside a Ray worker (a trial) only the size is compared: the driver has hashed the same
files before any trial started.
"""
from __future__ import annotations

import functools
import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import mqat

T = TypeVar("T")


def spec_key(spec: Any, version: int) -> str:
    """The cache key of a rendered set: a hash of its spec (a dataclass) and the renderer's version."""
    payload = json.dumps({"spec": asdict(spec), "renderer": version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def rendered(path: Path, render: Callable[[], T], *, save: Callable[[T, Path], None],
             load: Callable[[Path], T]) -> T:
    """``load(path)`` from a verified cache file, or after ``render()`` made it (``save``, then its
    record). What ``render`` makes is fixed by the key in ``path``, so a damaged cache costs a
    render (with a warning), not a search."""
    path = Path(path)
    if path.exists():
        reason = problem(path)
        if reason is None:
            return load(path)
        warnings.warn(f"the rendered cache {path} is damaged ({reason}): rendering it again",
                      RuntimeWarning, stacklevel=3)
    save(render(), path)
    write_record(path)
    return load(path)


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def write_record(path: Path) -> None:
    """Record the size and hash of ``path`` (written whole already) beside it, atomically."""
    path = Path(path)
    record = {"size": path.stat().st_size, "sha256": _sha256(path)}
    mqat.atomic_write(record_path(path), lambda f: json.dump(record, f), text=True)


def in_ray_worker() -> bool:
    ray = sys.modules.get("ray")  # never imported here: a process without Ray is no worker
    return bool(ray and ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE)


@functools.lru_cache(maxsize=64)
def _hash_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """The hash of one version of a file (a rewrite changes its mtime or inode): once each."""
    return _sha256(Path(path))


def problem(path: Path, *, full: bool | None = None) -> str | None:
    """None if ``path`` matches its record, else what is wrong, in a few words. ``full`` compares
    the hash too (default: everywhere but in a Ray worker)."""
    path = Path(path)
    try:
        record = json.loads(record_path(path).read_text())
        size, digest = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return "it has no size and hash record"
    except (ValueError, KeyError, TypeError):
        return f"its record {record_path(path).name} is unreadable"
    stat = path.stat()
    if stat.st_size != size:
        return f"it holds {stat.st_size} bytes, but {size} were written"
    hash_it = full if full is not None else not in_ray_worker()
    if hash_it and _hash_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino) != digest:
        return "its SHA-256 differs from the one recorded at write"
    return None
