"""The driver's logged files reach storage before a retried trial copies them back."""
from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs

from search.retry_reports import push_trial_logs


def _trial(local, remote):
    return SimpleNamespace(local_path=str(local), path=str(remote),
                           storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem()))


def test_the_staging_copy_replaces_a_storage_copy_a_sync_behind(tmp_path):
    local, remote = tmp_path / "staging", tmp_path / "storage"
    local.mkdir(), remote.mkdir()
    (local / "result.json").write_text('{"stage": 0}\n{"stage": 1}\n')
    (remote / "result.json").write_text('{"stage": 0}\n')            # the last sync's copy
    push_trial_logs(_trial(local, remote))
    assert (remote / "result.json").read_text() == '{"stage": 0}\n{"stage": 1}\n'
    assert not (remote / "progress.csv").exists()                   # nothing logged, nothing made



def test_a_trial_failed_before_its_storage_directory_exists_gets_it_made(tmp_path):
    """A worker lost in the trial's first seconds: the driver's logger has opened result.json,
    the trial's directory in storage is not made yet (the driver once died here of a
    FileNotFoundError, ending the search)."""
    local, remote = tmp_path / "staging", tmp_path / "storage" / "train_mqat_1"
    local.mkdir()
    (local / "result.json").write_text('{"stage": 0}\n')
    (local / "progress.csv").write_text("")                          # opened, nothing logged yet
    push_trial_logs(_trial(local, remote))
    assert (remote / "result.json").read_text() == '{"stage": 0}\n'
    assert not (remote / "progress.csv").exists()
