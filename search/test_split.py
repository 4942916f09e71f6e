"""The held-out report: the front's models scored on the test split, which no search decision saw.

The search ranks trials on the validation images; reporting the front on the same images
overstates it (selection bias, METHODS 6). After the search, the driver loads each front
model from its trial's checkpoint and scores it once on the task's test split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mqat

MODEL_FILE = "model.mqat"


def final_model(trial_dir: str | Path, task):
    """A finished trial's final model, loaded from its newest checkpoint; None if it has none."""
    checkpoints = sorted(Path(trial_dir).glob("checkpoint_*"))
    if not checkpoints or not (checkpoints[-1] / MODEL_FILE).is_file():
        return None
    return mqat.load_packed(checkpoints[-1] / MODEL_FILE, model=task.build_model())


def score_front_on_test(grid, rows: list[dict[str, Any]], task, *, log=print) -> list[dict[str, Any]]:
    """Set ``test_accuracy`` (and ``test_accuracy_se``) on the front rows; return them."""
    by_path = {r["path"]: r for r in rows if r.get("pareto")}
    scored = []
    for result in grid:
        row = by_path.get(str(result.path) if result.path else None)
        if row is None or result.checkpoint is None:
            continue
        with result.checkpoint.as_directory() as directory:
            path = Path(directory) / MODEL_FILE
            if not path.is_file():
                continue
            model = mqat.load_packed(path, model=task.build_model())
        metrics = task.evaluate(model, split="test")
        row["test_accuracy"] = float(metrics["accuracy"])
        row["test_accuracy_se"] = metrics.get("accuracy_se")
        scored.append(row)
    if scored:
        log(f"scored the {len(scored)} front model(s) on the test split")
    return scored
