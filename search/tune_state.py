"""A last good copy of Ray Tune's state files, kept beside the search, for ``--resume``.

Tune writes its experiment state (``experiment_state-*.json``: every trial, its checkpoint and
status), the searcher's and the callbacks' state into the driver's staging directory, then copies
them to the storage directory in the background: a driver killed during a write leaves a truncated
file (0 bytes was seen), and the resumed search then forgot every trial, finished ones included.
:class:`StateKeeper` copies each new snapshot into ``.tune-state-kept/`` from the staging
directory, in the same step of Tune's loop that wrote it (Tune saves a snapshot just before it
calls the callbacks' ``on_step_end``), so the kept copy is whole, one snapshot's, and never a
snapshot behind: a trial whose checkpoint Tune has recorded is in it. (Watching the storage
directory instead, for files that had stopped changing, missed every snapshot while two trials
checkpointed more often than that wait: the kept copy then lagged by whole trials, and a resume
from it reran a finished trial under a new name.) :func:`repair` puts the kept copy back in
place of an unreadable file before Tune reads it. Only a directory needs this: an object store
writes each object whole.

A trial keeps two checkpoints, so by the time a kept snapshot is needed the checkpoint it names
may be gone (replaced by the trial's next one): the keeper also keeps hard links to the
checkpoints that existed when it copied the snapshot (no data copied), and ``repair`` links back
those that are missing. Such a trial then resumes from that older stage; its stages are reseeded,
so it trains again what it had trained, and the tracker logs each stage once.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import shutil
from pathlib import Path

from ray.tune import Callback

from . import storage
from .config import ConfigError

KEPT_DIR = ".tune-state-kept"
CHECKPOINTS = "checkpoints"  # in KEPT_DIR: <trial>/<checkpoint>/ hard links
PATTERNS = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl")


def readable(path: Path) -> bool:
    """Whether a state file reads whole: JSON parses; a pickle's opcodes run to STOP (scanned,
    not executed)."""
    try:
        data = path.read_bytes()
        if not data:
            return False
        if data[:1] == b"\x80":  # a pickle (search_gen_state-*.json is one too, despite its name)
            for _ in pickletools.genops(data):
                pass
        else:
            json.loads(data)
        return True
    except (OSError, ValueError):
        return False


def _newest(directory: Path) -> dict[str, Path]:
    """The newest file of each state pattern in ``directory`` (Tune reads the newest)."""
    found = {}
    for pattern in PATTERNS:
        files = sorted(directory.glob(pattern))
        if files:
            found[pattern] = files[-1]
    return found


class StateKeeper(Callback):
    """Copies each snapshot of Tune's state from the driver's staging directory, where Tune has
    just written it, to ``.tune-state-kept/`` beside the search (a stat per file each step of
    Tune's loop, a copy per snapshot)."""

    def __init__(self, experiment: str):
        self.experiment = experiment
        self._kept: dict[str, float] = {}

    def __getstate__(self):  # Tune pickles callbacks: the copies made are on disk, not in here
        return {"experiment": self.experiment, "_kept": {}}

    def on_step_end(self, iteration, trials, **info):
        if storage.is_uri(self.experiment) or not trials:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        files = _newest(staging)
        try:
            stamps = {pattern: path.stat().st_mtime_ns for pattern, path in files.items()}
        except OSError:
            return
        if not files or stamps == self._kept or not all(readable(path) for path in files.values()):
            return
        directory = Path(self.experiment)
        kept = directory / KEPT_DIR
        kept.mkdir(exist_ok=True)
        _link_checkpoints(directory, kept / CHECKPOINTS)
        for pattern, path in files.items():
            partial = kept / f".{path.name}.partial"
            shutil.copyfile(path, partial)
            os.replace(partial, kept / path.name)
            for stale in kept.glob(pattern):
                if stale.name != path.name:
                    stale.unlink(missing_ok=True)
        self._kept = stamps


def _checkpoints(root: Path) -> set[tuple[str, str]]:
    return {(c.parent.name, c.name) for c in root.glob("*/checkpoint_*") if c.is_dir()}


def _link_tree(source: Path, target: Path) -> None:
    """``target`` as a tree of hard links to ``source``'s files (a partial one is replaced)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, copy_function=os.link)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def _link_checkpoints(experiment: Path, kept: Path) -> None:
    """Make ``kept`` hold links to exactly the checkpoints the trials have now (only the new
    ones are linked: a stat per checkpoint and a link per new file each snapshot)."""
    present, linked = _checkpoints(experiment), _checkpoints(kept)
    for trial, checkpoint in present - linked:
        try:
            _link_tree(experiment / trial / checkpoint, kept / trial / checkpoint)
        except OSError:  # deleted meanwhile by Tune, or a filesystem without hard links
            shutil.rmtree(kept / trial / checkpoint, ignore_errors=True)
    for trial, checkpoint in linked - present:
        shutil.rmtree(kept / trial / checkpoint, ignore_errors=True)


def _plan(experiment: Path) -> dict[Path, Path]:
    """If any state file is unreadable, each state file and the kept copy that replaces it: the
    whole kept set, one snapshot's, so that trials, searcher and callbacks agree. ConfigError if
    a file has no good copy."""
    current = _newest(experiment)
    broken = [path for path in current.values() if not readable(path)]
    if not broken:
        return {}
    kept = _newest(experiment / KEPT_DIR)
    replace = {}
    for pattern, path in current.items():
        copy = kept.get(pattern)
        if copy is None or not readable(copy):
            raise ConfigError(
                f"the search's Tune state file {broken[0]} is unreadable (truncated: a driver killed while "
                f"writing it) and no good copy of the state is kept in {experiment / KEPT_DIR}: Tune cannot "
                f"resume this search; start a new search (without --resume); the finished trials' "
                f"results stay in {experiment}")
        replace[path] = copy
    return replace


def check(experiment: str) -> None:
    """Refuse a search whose state can be neither read nor restored (nothing is written)."""
    if not storage.is_uri(experiment):
        _plan(Path(experiment))
        _refuse_gone_classes(Path(experiment))


#: this project's packages: a class of theirs that Tune pickled must still exist to be unpickled
OWN_PACKAGES = ("search", "trainables", "tracking", "spaces", "mqat")


class _Stub:
    """Stands in for every class and function a scanned pickle names: accepts any call, state or
    item, so the pickle is walked to its end without running any of its code."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass


class _Recorder(pickle.Unpickler):
    """An unpickler that records each (module, name) the pickle imports and returns a stub."""

    def __init__(self, file):
        super().__init__(file)
        self.found: set[tuple[str, str]] = set()

    def find_class(self, module, name):
        self.found.add((module, name))
        return _Stub

    def persistent_load(self, pid):
        return _Stub()


def _pickled_classes(path: Path) -> set[tuple[str, str]]:
    """The (module, name) pairs a pickle imports, as its unpickler asks for them (every one
    answered by a stub: nothing of the pickle runs); empty if it cannot be walked."""
    recorder = _Recorder(io.BytesIO(path.read_bytes()))
    try:
        recorder.load()
    except Exception:  # noqa: BLE001 (a stub the pickle could not use: say nothing, Tune will)
        return set()
    return recorder.found


def _exists(module: str, name: str) -> bool:
    import importlib

    try:
        return hasattr(importlib.import_module(module), name.split(".")[0])
    except ImportError:
        return False


def _refuse_gone_classes(experiment: Path) -> None:
    """A search started by an earlier version may have had Tune pickle a class of this project
    that is gone (``search.searcher.Searcher``, with MOASHA): one line instead of Tune's traceback."""
    for path in sorted(experiment.glob("*.pkl")):
        if not readable(path):
            continue  # repair() puts the kept copy back; its classes are the same
        gone = sorted(f"{m}.{n}" for m, n in _pickled_classes(path)
                      if m.split(".")[0] in OWN_PACKAGES and not _exists(m, n))
        if gone:
            raise ConfigError(f"the search's Tune state ({path.name}) names {gone[0]}, which this version of "
                              f"mqat-search no longer has: it was started by an earlier version; resume it "
                              f"with that version, or start a new search (without --resume)")


def repair(experiment: str, log=print) -> None:
    """Put the kept copy in place of each unreadable state file, before Tune reads them."""
    if storage.is_uri(experiment):
        return
    replace = _plan(Path(experiment))
    if replace:
        broken = sorted(path.name for path in replace if not readable(path))
        log(f"Tune's state file(s) {', '.join(broken)} unreadable (truncated by a kill): resuming from the last "
            f"good copy of the state, kept in {KEPT_DIR}")
    directory, kept = Path(experiment), Path(experiment) / KEPT_DIR / CHECKPOINTS
    for trial, checkpoint in sorted(_checkpoints(kept) - _checkpoints(directory)) if replace else ():
        if (directory / trial).is_dir():
            _link_tree(kept / trial / checkpoint, directory / trial / checkpoint)
    for path, copy in replace.items():
        shutil.copyfile(copy, path)
