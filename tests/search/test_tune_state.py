"""The last good copy of Tune's state files: what reads whole, what is kept, what is restored."""
import json
import pickle
from types import SimpleNamespace

import pytest

from search.config import ConfigError
from search.tune_state import KEPT_DIR, StateKeeper, check, readable, repair


def _write_state(directory, session="2026-01-01_00-00-00", trials=3):
    (directory / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": list(range(trials))}))
    (directory / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": trials}))  # a pickle
    (directory / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"trials": trials}))


def _trials(staging):
    """What the keeper reads of Tune's trials: where the driver stages the experiment's state."""
    return [SimpleNamespace(storage=SimpleNamespace(experiment_driver_staging_path=str(staging)))]


def test_readable_tells_whole_files_from_truncated_ones(tmp_path):
    whole = pickle.dumps({"a": list(range(100))})
    for name, data, expected in [("a.json", b'{"x": 1}', True), ("b.json", b'{"x": ', False), ("c.json", b"", False),
                                 ("d.pkl", whole, True), ("e.pkl", whole[:-1], False), ("f.json", whole, True)]:
        (tmp_path / name).write_bytes(data)
        assert readable(tmp_path / name) is expected, name


def test_the_keeper_copies_each_whole_snapshot_at_once_and_repair_puts_it_back(tmp_path):
    staging, experiment = tmp_path / "staging", tmp_path / "experiment"
    staging.mkdir(), experiment.mkdir()
    keeper = StateKeeper(str(experiment))
    keeper.on_step_end(iteration=0, trials=[])               # no trial yet: nothing to keep
    assert not (experiment / KEPT_DIR).exists()
    _write_state(staging)
    keeper.on_step_end(iteration=1, trials=_trials(staging))  # the step that wrote it
    kept = sorted(p.name for p in (experiment / KEPT_DIR).iterdir())
    assert kept == sorted(p.name for p in staging.iterdir())
    # a later snapshot of a new session, kept in the same step; then a kill truncates the synced copy
    _write_state(staging, session="2026-01-02_00-00-00", trials=5)
    keeper.on_step_end(iteration=2, trials=_trials(staging))
    assert len(list((experiment / KEPT_DIR).iterdir())) == 3  # the newest set only
    _write_state(experiment, session="2026-01-02_00-00-00", trials=5)
    for path in experiment.glob("*2026-01-02*"):
        path.write_bytes(b"")
    (staging / "experiment_state-2026-01-02_00-00-00.json").write_bytes(b"")
    keeper.on_step_end(iteration=3, trials=_trials(staging))  # an unreadable snapshot is never kept
    check(str(experiment))
    lines = []
    repair(str(experiment), log=lines.append)
    assert json.loads((experiment / "experiment_state-2026-01-02_00-00-00.json").read_text()) == {"trial_data": list(range(5))}
    assert pickle.loads((experiment / "searcher-state-2026-01-02_00-00-00.pkl").read_bytes()) == {"trials": 5}
    assert len(lines) == 1 and "last good copy" in lines[0]


def test_a_checkpoint_the_kept_snapshot_names_is_linked_back_once_tune_dropped_it(tmp_path):
    """A trial keeps one checkpoint: by the time the kept snapshot is used, its checkpoint may be gone."""
    import shutil

    _write_state(tmp_path)
    old = tmp_path / "train_mqat_a" / "checkpoint_000001"
    old.mkdir(parents=True)
    (old / "flow_state.pt").write_bytes(b"stage 1")
    StateKeeper(str(tmp_path)).on_step_end(iteration=1, trials=_trials(tmp_path))
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


def _pickle_naming(module: str, name: str) -> bytes:
    """A pickle of an instance of ``module.name``, the class made up for the moment it is written."""
    import sys
    import types

    fake = types.ModuleType(module)
    cls = type(name, (), {"__module__": module})
    setattr(fake, name, cls)
    had = sys.modules.get(module)
    sys.modules[module] = fake
    try:
        return pickle.dumps(cls(), protocol=4)
    finally:
        if had is None:
            del sys.modules[module]
        else:
            sys.modules[module] = had


def test_a_state_naming_a_class_this_version_lacks_is_refused_in_one_line(tmp_path):
    """A search started before MOASHA's retirement had Tune pickle search.searcher.Searcher:
    --resume says so in one line instead of failing in Tune's unpickling."""
    (tmp_path / "searcher-state-2026.pkl").write_bytes(_pickle_naming("search.searcher", "Searcher"))
    with pytest.raises(ConfigError, match=r"names search\.searcher\.Searcher, which this version .* earlier version"):
        check(str(tmp_path))


def test_a_state_naming_classes_that_exist_passes(tmp_path):
    (tmp_path / "tuner.pkl").write_bytes(pickle.dumps(StateKeeper("x"), protocol=4))
    (tmp_path / "other.pkl").write_bytes(_pickle_naming("somewhere_else", "Thing"))  # not this project's
    check(str(tmp_path))


def test_the_classes_a_pickle_imports_are_read_as_written_and_none_runs(tmp_path):
    """Two instances of one class (its names written once, fetched from the pickle's memo after)
    and another: every pair read is a real (module, name); no constructor ran."""
    from search.tune_state import _pickled_classes

    data = pickle.dumps([StateKeeper("a"), StateKeeper("b"), SimpleNamespace(x=1)], protocol=4)
    (tmp_path / "state.pkl").write_bytes(data)
    pairs = _pickled_classes(tmp_path / "state.pkl")
    assert ("search.tune_state", "StateKeeper") in pairs and ("types", "SimpleNamespace") in pairs
    assert all(m in ("search.tune_state", "types", "builtins") for m, _ in pairs), pairs
