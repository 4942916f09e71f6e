"""``mqat report``: the front of a search, from its directory (or its MLflow parent run)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .live_table import OBJECTIVE_PLOT_FILES, PLOT_FILE, TABLE_FILE, LiveTable
from .metric import Metric
from .objectives import DEFAULT
from .results import mark_front, row

SEEDS_FILE, FP_FILE, TEST_FILE = "seeds.json", "fp_metrics.json", "test_scores.json"
TASK_FILE = "task.json"
#: The files the driver writes into a search beside Tune's (copied up to an object store).
DRIVER_FILES = (SEEDS_FILE, FP_FILE, TASK_FILE, TEST_FILE, TABLE_FILE, PLOT_FILE, *OBJECTIVE_PLOT_FILES)
TEST_FIELDS = ("test_accuracy", "test_accuracy_se", "test_accuracy_onnx", "test_accuracy_onnx_se")


def save_search_info(path: Path, seeds: list[dict[str, Any]], fp_metrics: dict[str, Any], metric: Metric,
                     modules: list[str], objectives: tuple[str, ...] = DEFAULT) -> None:
    """What a report needs beside Tune's files: the seed points, the FP model's metrics, how the
    task's metric reads, the network's modules in order and the search's objectives."""
    path.mkdir(parents=True, exist_ok=True)
    (path / SEEDS_FILE).write_text(json.dumps(seeds))
    (path / FP_FILE).write_text(json.dumps(fp_metrics))
    (path / TASK_FILE).write_text(json.dumps({"metric": metric.to_dict(), "modules": list(modules),
                                              "objectives": list(objectives)}))


def load_task_info(path: Path) -> tuple[Metric, list[str] | None]:
    """The task's metric and modules as the search saved them (a plain ``accuracy`` and the
    modules in the trials' own keys for a search without)."""
    file = path / TASK_FILE
    if not file.is_file():
        return Metric(), None
    info = json.loads(file.read_text())
    return Metric.from_dict(info["metric"]), list(info["modules"])


def load_metric(path: Path) -> Metric:
    return load_task_info(path)[0]


def load_objectives(path: Path) -> tuple[str, ...]:
    """The objectives a search saved (accuracy and compression for one saved without)."""
    file = path / TASK_FILE
    return tuple(json.loads(file.read_text()).get("objectives", DEFAULT)) if file.is_file() else DEFAULT


def save_test_scores(path: Path, rows: list[dict[str, Any]]) -> None:
    """The front's held-out test scores by trial id (Tune's files do not hold them)."""
    scores = {r["trial_id"]: {k: r.get(k) for k in TEST_FIELDS} for r in rows if r.get("test_accuracy") is not None}
    (path / TEST_FILE).write_text(json.dumps(scores))


def reports(trial_dir: Path) -> list[dict[str, Any]]:
    """A trial's reports, in order, from Tune's ``result.json`` (the durable record), also while
    Tune writes it: a missing file holds no reports yet, and a half-written line (the last, where
    a driver was killed mid-write) is not a report."""
    try:
        return _parse((Path(trial_dir) / "result.json").read_text())
    except FileNotFoundError:
        return []


def trial_reports(trial) -> list[dict[str, Any]]:
    """A Tune trial's reports from both copies of its ``result.json``: the one in the
    experiment's storage (``trial.path``), which holds what earlier drivers wrote, and this
    driver's staging copy (``trial.local_path``, a new directory in each driver session: after
    ``--resume`` it holds only this session's lines, and the newest of them may not be synced
    yet). A stage may appear in both: readers keep one per stage."""
    found = []
    storage = getattr(trial, "storage", None)
    filesystem = getattr(storage, "storage_filesystem", None)
    if filesystem is not None and getattr(trial, "path", None):
        try:
            with filesystem.open_input_stream(f"{trial.path}/result.json") as stream:
                found += _parse(stream.read().decode())
        except (FileNotFoundError, OSError):  # no report synced yet
            pass
    if getattr(trial, "local_path", None):
        found += reports(Path(trial.local_path))
    return found


def _parse(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


def _last_report(trial_dir: Path) -> dict[str, Any]:
    found = reports(trial_dir)
    return found[-1] if found else {}


def rows_from_experiment(path: Path, where: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """One row per trial directory of a Tune experiment, the front marked. A row's ``path`` is
    its trial directory, or ``where(trial directory name)`` (a search copied from elsewhere)."""
    seeds = json.loads((path / SEEDS_FILE).read_text()) if (path / SEEDS_FILE).is_file() else []
    metric, modules = load_task_info(path)
    rows = []
    for trial_dir in sorted(p for p in path.iterdir() if p.is_dir() and (p / "params.json").is_file()):
        config = json.loads((trial_dir / "params.json").read_text())
        last = _last_report(trial_dir)
        error_file = trial_dir / "error.txt"
        error = None
        if error_file.is_file():
            lines = [line for line in error_file.read_text().splitlines() if line.strip()]
            error = lines[-1].strip()[:500] if lines else "error"
        trial_id = last.get("trial_id") or trial_dir.name.split("_")[2]
        rows.append(row(trial_id, config, last, error=error if not last.get("final") else None,
                        seeds=seeds, path=where(trial_dir.name) if where else str(trial_dir),
                        companions=metric.companions, modules=modules))
    tests = json.loads((path / TEST_FILE).read_text()) if (path / TEST_FILE).is_file() else {}
    for r in rows:
        r.update(tests.get(r["trial_id"], {}))
    return mark_front(rows, load_objectives(path))


def resolve(target: str, tracking_uri: str | None = None) -> Path | str:
    """A search directory (or object-store URI), given itself or the id of its MLflow parent run."""
    if "://" in target:
        return target
    path = Path(target)
    if path.is_dir():
        return path.resolve()
    if tracking_uri is None:
        raise ValueError(f"{target!r} is not a search directory (give --tracking-uri to look it up "
                         "as an MLflow run id)")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(target)
    except MlflowException:
        raise ValueError(f"{target!r} is neither a search directory nor a run in {tracking_uri}") from None
    search_path = run.data.tags.get("search_path")
    if search_path and "://" in search_path:
        return search_path
    if not search_path or not Path(search_path).is_dir():
        raise ValueError(f"run {target} names no readable search directory ({search_path!r})")
    return Path(search_path)


def report(path: Path, where: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """Rebuild ``trials.parquet`` and ``pareto.png`` of a search directory; return its rows."""
    rows = rows_from_experiment(path, where)
    if not rows:
        raise ValueError(f"{path} holds no trials")
    fp = json.loads((path / FP_FILE).read_text()) if (path / FP_FILE).is_file() else {}
    return LiveTable(path, metric=load_metric(path), fp_accuracy=fp.get("accuracy"),
                     fp_test_accuracy=fp.get("test_accuracy"), objectives=load_objectives(path)).write(rows)
