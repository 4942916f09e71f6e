"""The last good copy of Tune's state files: what reads whole, what is kept, what is restored."""
import json
import pickle

import pytest

from search.config import ConfigError
from search.tune_state import KEPT_DIR, StateKeeper, check, readable, repair


def _write_state(directory, session="2026-01-01_00-00-00", trials=3):
    (directory / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": list(range(trials))}))
    (directory / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": trials}))  # a pickle
    (directory / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"trials": trials}))


def _settle(directory, seconds=5.0):
    import os
    import time
    for path in directory.iterdir():
        if path.is_file():
            os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_readable_tells_whole_files_from_truncated_ones(tmp_path):
    whole = pickle.dumps({"a": list(range(100))})
    for name, data, expected in [("a.json", b'{"x": 1}', True), ("b.json", b'{"x": ', False), ("c.json", b"", False),
                                 ("d.pkl", whole, True), ("e.pkl", whole[:-1], False), ("f.json", whole, True)]:
        (tmp_path / name).write_bytes(data)
        assert readable(tmp_path / name) is expected, name


def test_the_keeper_copies_a_settled_whole_snapshot_and_repair_puts_it_back(tmp_path):
    _write_state(tmp_path)
    keeper = StateKeeper(str(tmp_path))
    keeper.on_step_end(iteration=1, trials=[])
    assert not (tmp_path / KEPT_DIR).exists()              # just written: Tune's copy may be under way
    _settle(tmp_path)
    keeper.on_step_end(iteration=2, trials=[])
    kept = sorted(p.name for p in (tmp_path / KEPT_DIR).iterdir())
    assert kept == sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    # a later snapshot of a new session, then a kill that truncates it
    _write_state(tmp_path, session="2026-01-02_00-00-00", trials=5)
    _settle(tmp_path)
    keeper.on_step_end(iteration=3, trials=[])
    assert len(list((tmp_path / KEPT_DIR).iterdir())) == 3  # the newest set only
    for path in tmp_path.glob("*2026-01-02*"):
        path.write_bytes(b"")
    keeper.on_step_end(iteration=4, trials=[])              # an unreadable snapshot is never kept
    check(str(tmp_path))
    lines = []
    repair(str(tmp_path), log=lines.append)
    assert json.loads((tmp_path / "experiment_state-2026-01-02_00-00-00.json").read_text()) == {"trial_data": list(range(5))}
    assert pickle.loads((tmp_path / "searcher-state-2026-01-02_00-00-00.pkl").read_bytes()) == {"trials": 5}
    assert len(lines) == 1 and "last good copy" in lines[0]


def test_a_checkpoint_the_kept_snapshot_names_is_linked_back_once_tune_dropped_it(tmp_path):
    """A trial keeps one checkpoint: by the time the kept snapshot is used, its checkpoint may be gone."""
    import shutil

    _write_state(tmp_path)
    old = tmp_path / "train_mqat_a" / "checkpoint_000001"
    old.mkdir(parents=True)
    (old / "flow_state.pt").write_bytes(b"stage 1")
    _settle(tmp_path)
    StateKeeper(str(tmp_path)).on_step_end(iteration=1, trials=[])
    shutil.rmtree(old)                                          # Tune: the next checkpoint replaces it
    (tmp_path / "train_mqat_a" / "checkpoint_000002").mkdir()
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_bytes(b"")   # then the kill
    repair(str(tmp_path), log=lambda *_: None)
    assert (old / "flow_state.pt").read_bytes() == b"stage 1"
    assert (tmp_path / "train_mqat_a" / "checkpoint_000002").is_dir()


def test_an_unreadable_state_without_a_copy_is_refused_and_nothing_written(tmp_path):
    _write_state(tmp_path)
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_bytes(b"")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="unreadable .* start a new search"):
        check(str(tmp_path))
    with pytest.raises(ConfigError):
        repair(str(tmp_path))
    assert sorted(tmp_path.rglob("*")) == before


def test_a_whole_state_is_left_alone(tmp_path):
    _write_state(tmp_path)
    repair(str(tmp_path), log=pytest.fail)
