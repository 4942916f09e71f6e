"""The trials of a search as rows, with its table and plot rewritten whenever a trial ends.

One home for what every search keeps up to date, with MLflow or without: the MLflow tracker
uses it, and a search with tracking off runs it as a Tune callback of its own (``TableCallback``),
so a driver killed mid-search leaves a current ``trials.parquet`` and ``pareto.png`` either way.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from .metric import ACCURACY, Metric
from .objectives import DEFAULT, OBJECTIVES, extra
from .plot import plot_front, plot_objective
from .results import error_line, mark_front, row
from .table import read_table, write_table

TABLE_FILE, PLOT_FILE = "trials.parquet", "pareto.png"


def objective_plot_file(name: str) -> str:
    """The plot of an objective beyond accuracy and compression: ``pareto_latency.png``."""
    return f"pareto_{name}.png"


#: every plot a search may draw beside ``pareto.png``, one per objective beyond the first two
OBJECTIVE_PLOT_FILES = tuple(objective_plot_file(o.name) for o in extra(tuple(OBJECTIVES)))


class LiveTable:
    """Rows by trial id, written as ``trials.parquet`` and ``pareto.png`` in ``output_dir``
    (then ``publish()``, which copies them where the search lives). The front is over
    ``objectives``; each one beyond accuracy and compression gets a plot of its own
    (``pareto_latency.png``).

    The table is rewritten on every call; the plots at most every ``plot_every_s`` seconds
    (and on ``force``): drawing hundreds of points after every one of a thousand trials made
    the plots the driver's largest cost (``bench/scale.py``)."""

    def __init__(self, output_dir: str | Path, *, metric: Metric = ACCURACY, modules: list[str] | None = None,
                 seeds: Iterable[Mapping[str, Any]] = (), fp_accuracy: float | None = None,
                 fp_test_accuracy: float | None = None, publish: Callable[[], None] | None = None,
                 objectives: tuple[str, ...] = DEFAULT, plot_every_s: float = 10.0):
        self.output_dir = Path(output_dir)
        self.metric, self.modules, self.seeds = metric, modules, list(seeds)
        self.fp_accuracy, self.fp_test_accuracy = fp_accuracy, fp_test_accuracy
        self.publish = publish  # a picklable callable: Tune pickles its callbacks
        self.objectives = tuple(objectives)
        self.plot_every_s = plot_every_s
        self.drawn_at: float | None = None  # time.monotonic() of the last plot; None: never drawn
        self.rows: dict[str, dict[str, Any]] = {}

    def __getstate__(self):  # Tune pickles it with its callbacks: a monotonic time is this process's only
        return {**self.__dict__, "drawn_at": None}

    @property
    def table_path(self) -> Path:
        return self.output_dir / TABLE_FILE

    @property
    def plot_path(self) -> Path:
        return self.output_dir / PLOT_FILE

    def restore(self, table: str | Path) -> None:
        """Continue from a table written before (a resumed search)."""
        self.rows = {r["trial_id"]: r for r in read_table(table)}

    def add(self, trial, error: str | None, trials: Iterable = ()) -> dict[str, Any]:
        """Record an ended Tune trial, rewrite the files, and return its row (front marked).
        ``trials`` (all of Tune's) fill in any ended trial the rows lack: a driver killed after a
        trial ended and before its table was saved restores a table without it."""
        for other in trials:
            ended = {"TERMINATED": None, "ERROR": "error"}
            if other.status in ended and other.trial_id not in self.rows and other is not trial:
                self.rows[other.trial_id] = self._row(other, error_line(other) if ended[other.status] else None)
        self.rows[trial.trial_id] = self._row(trial, error)
        self.write(list(self.rows.values()), force=False)
        return self.rows[trial.trial_id]

    def _row(self, trial, error: str | None) -> dict[str, Any]:
        return row(trial.trial_id, trial.config, trial.last_result or {}, error=error, seeds=self.seeds,
                   path=trial.local_path, companions=self.metric.companions, modules=self.modules)

    def due(self) -> bool:
        """Whether the next write redraws the plots."""
        return self.drawn_at is None or time.monotonic() - self.drawn_at >= self.plot_every_s

    def write(self, rows: list[dict[str, Any]], *, force: bool = True) -> list[dict[str, Any]]:
        """Mark the front of ``rows``, write the table and (when due, or ``force``) the plots,
        publish them."""
        rows = mark_front(rows, self.objectives)
        write_table(rows, self.table_path, self.metric.companions)
        if force or self.due():
            self.draw(rows)
        if self.publish is not None:
            self.publish()
        return rows

    def finish(self) -> bool:
        """At the search's end: write the files with the plots drawn now (they may lag the last
        trials by up to ``plot_every_s``); whether there was anything to write."""
        if self.rows:
            self.write(list(self.rows.values()), force=True)
        return bool(self.rows)

    def draw(self, rows: list[dict[str, Any]]) -> None:
        self.drawn_at = time.monotonic()
        plot_front(rows, self.plot_path, fp_accuracy=self.fp_accuracy, fp_test_accuracy=self.fp_test_accuracy,
                   ylabel=self.metric.label)
        for objective in extra(self.objectives):
            plot_objective(rows, objective, self.output_dir / objective_plot_file(objective.name),
                           ylabel=self.metric.label, objectives=len(self.objectives))


class TableCallback(Callback):
    """A :class:`LiveTable` kept by Tune's trial events (for searches without MLflow)."""

    def __init__(self, table: LiveTable):
        self.table = table

    def setup(self, **info):
        if not self.table.rows and self.table.table_path.is_file():  # --resume
            self.table.restore(self.table.table_path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.table.add(trial, error=None, trials=trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.table.add(trial, error=error_line(trial), trials=trials)

    def on_experiment_end(self, trials, **info):
        self.table.finish()
