"""A retried trial keeps the reports it made before it failed.

Tune's JSON and CSV loggers write a trial's ``result.json`` and ``progress.csv`` into the
driver's staging directory, and Tune copies that directory to the storage directory now and then
(each sync period, at the search's end). When a trial fails and Tune retries it from its
checkpoint, the loggers first copy both files back *from storage* over the staging copies
(``LoggerCallback._restore_from_remote``, Ray 2.60): the storage copy can be a sync behind, so the
reports made since the last sync were overwritten. A worker killed after its first stage left a
``result.json`` with every stage but that first one (its checkpoint, the one the retry resumed
from, was still there). :class:`ReportsKeptOnRetry` copies the staging files to storage when Tune
decides to retry a trial, before it restarts it, so the copy that comes back is whole.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.fs
from ray.tune import Callback

#: The files Tune's loggers copy back from storage when a trial restarts from a checkpoint.
LOGGED_FILES = ("result.json", "progress.csv")


def push_trial_logs(trial) -> None:
    """Copy the trial's logged files from the driver's staging directory to its storage path
    (made first: a trial that failed in its first seconds may have none there yet)."""
    filesystem = trial.storage.storage_filesystem
    logged = [p for name in LOGGED_FILES if (p := Path(trial.local_path, name)).is_file() and p.stat().st_size]
    if logged:  # not before the trial's first report
        filesystem.create_dir(trial.path, recursive=True)
    for local in logged:
        pyarrow.fs.copy_files(str(local), f"{trial.path}/{local.name}", destination_filesystem=filesystem)


class ReportsKeptOnRetry(Callback):
    """Before Tune restarts a failed trial, its storage copy of the logs is brought up to date."""

    def on_trial_recover(self, iteration, trials, trial, **info):
        push_trial_logs(trial)
