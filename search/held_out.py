"""The held-out report: the front's models scored on the test split, which no search decision saw.

The search ranks trials on the validation images; reporting the front on the same images
overstates it (selection bias, METHODS 6). After the search, the driver loads each front
model from its trial's checkpoint and scores it once on the task's test split; and where the
trial exported it, the ONNX file too, run in the deployment runtime (``test_accuracy_onnx``):
the runtime's own rounding (an int32 bias, say) can cost accuracy the PyTorch figure hides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mqat
from tracking.artifacts import MODEL_FILE, ONNX_FILE
from trainables.tasks import Task


def final_model(trial_dir: str | Path, task: Task):
    """A finished trial's final model, loaded from its newest checkpoint; None if it has none."""
    checkpoints = sorted(Path(trial_dir).glob("checkpoint_*"))
    if not checkpoints or not (checkpoints[-1] / MODEL_FILE).is_file():
        return None
    return mqat.load_packed(checkpoints[-1] / MODEL_FILE, model=task.build_model())


def _score_onnx(path: Path, model, task: Task, runtime: str) -> dict[str, Any]:
    from trainables.tasks import example_input

    deployed = mqat.OnnxModel(path, like=model, example_input=example_input(task).detach().cpu(), runtime=runtime)
    return task.evaluate(deployed, split="test")


def score_front_on_test(grid, rows: list[dict[str, Any]], task: Task, *, log=print,
                        runtime: str | None = None) -> list[dict[str, Any]]:
    """Set ``test_accuracy`` (and ``test_accuracy_se``) on the front rows; return them. With a
    ``runtime``, also ``test_accuracy_onnx`` (and its ``_se``): the trial's ONNX file run there."""
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
            onnx = Path(directory) / ONNX_FILE
            deployed = _score_onnx(onnx, model, task, runtime) if runtime and onnx.is_file() else None
        metrics = task.evaluate(model, split="test")
        row["test_accuracy"] = float(metrics["accuracy"])
        row["test_accuracy_se"] = metrics.get("accuracy_se")
        if deployed is not None:
            row["test_accuracy_onnx"] = float(deployed["accuracy"])
            row["test_accuracy_onnx_se"] = deployed.get("accuracy_se")
        scored.append(row)
    if scored:
        log(f"scored the {len(scored)} front model(s) on the test split")
    return scored
