"""Where searches live: a directory (on this machine, or one every node mounts) or an object-store
URI such as ``s3://bucket/searches``, read and written through pyarrow's filesystems, as Ray Tune
itself does.

A location is a string: a path, or a URI whose query (``?endpoint_override=...&scheme=http`` for
an S3-compatible server) stays at its end when names are joined, so Tune and this module open
the same filesystem. With an object store, the driver writes its own files (table, plot, seeds)
in a local directory and copies them up after each write: a plot is never half-uploaded.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

#: The URI schemes pyarrow (and so Ray Tune) can open as storage.
URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def check_location(location: str) -> None:
    """ValueError unless ``location`` is a path or a URI of a scheme pyarrow can open."""
    if not is_uri(location):
        return
    scheme = location.split("://", 1)[0]
    if scheme not in URI_SCHEMES:
        raise ValueError(f"search.storage.path {location!r} has an unknown scheme {scheme!r}: use a "
                         f"directory or one of {', '.join(s + '://' for s in URI_SCHEMES)}")
    if not location.split("://", 1)[1].split("?", 1)[0].strip("/"):
        raise ValueError(f"search.storage.path {location!r} names no bucket")


def join(location: str, name: str) -> str:
    """``location/name``, keeping a URI's query at its end."""
    if not is_uri(location):
        return str(Path(location) / name)
    base, _, query = location.partition("?")
    return f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")


def name(location: str) -> str:
    """The last part of a location's path (``s3://b/searches/tiny-1?x=y`` -> ``tiny-1``)."""
    return location.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]


def open_location(location: str):
    """(pyarrow filesystem, path on it) of a location."""
    from pyarrow import fs

    if not is_uri(location):
        return fs.LocalFileSystem(), str(Path(location).resolve())
    return fs.FileSystem.from_uri(location)


def check_reachable(location: str) -> None:
    """OSError (the store's reason) or ValueError unless the bucket of ``location`` can be read.
    Nothing is written: Tune writes its own marker there when the search starts."""
    from pyarrow import fs

    filesystem, path = open_location(location)
    bucket = path.strip("/").split("/", 1)[0]
    if filesystem.get_file_info(bucket).type == fs.FileType.NotFound:
        raise ValueError(f"bucket {bucket!r} not found")


def children(location: str, prefix: str = "") -> list[str]:
    """Names of the directories directly under ``location`` that start with ``prefix``, sorted."""
    from pyarrow import fs

    filesystem, path = open_location(location)
    if filesystem.get_file_info(path).type != fs.FileType.Directory:
        return []
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=False))
    return sorted(info.base_name for info in infos
                  if info.type == fs.FileType.Directory and info.base_name.startswith(prefix))


def upload(local_files: list[Path], location: str) -> None:
    """Copy local files into the directory at ``location`` (each one whole)."""
    from pyarrow import fs

    filesystem, path = open_location(location)
    for local in local_files:
        if local.is_file():
            fs.copy_files(str(local), str(PurePosixPath(path) / local.name),
                          destination_filesystem=filesystem)


def download(location: str, local_dir: Path, skip_prefix: str = "checkpoint_") -> None:
    """Copy the tree at ``location`` into ``local_dir``, leaving out directories whose name starts
    with ``skip_prefix`` (trial checkpoints: a report needs only the trials' results)."""
    from pyarrow import fs

    filesystem, path = open_location(location)
    if filesystem.get_file_info(path).type != fs.FileType.Directory:
        raise ValueError(f"{location} is not a search directory")
    for info in filesystem.get_file_info(fs.FileSelector(path, recursive=True)):
        relative = PurePosixPath(info.path).relative_to(path)
        if info.type != fs.FileType.File or any(p.startswith(skip_prefix) for p in relative.parts):
            continue
        target = local_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with filesystem.open_input_stream(info.path) as source:
            target.write_bytes(source.read())
