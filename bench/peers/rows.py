"""The section's rows: one per trained plan (task, arm, target, seed), a hypervolume per task, arm
and seed, and the rows that say what did not run."""
from __future__ import annotations

from collections import defaultdict

from bench.timing import row

SECTION = "peers"


def run_row(task: str, arm: str, target: float, seed: int, choice: dict, result: dict) -> dict:
    """A trained plan: test accuracy (the value) with its standard error, compression in the
    project's measure, packed bytes, the seconds the arm took to choose (all targets of the task at
    once) and the images its QAT read."""
    se = result.get("accuracy_se")
    note = (f"{result['compression']:.2f}x, +- {se:.3f} test, {result['bytes']:,} B, chose in "
            f"{choice['choose_s']:.0f} s") if se is not None else f"{result['compression']:.2f}x"
    return row(SECTION, f"{task} {arm} {target:g}x seed {seed}: test accuracy", result["accuracy"], note=note,
               task=task, arm=arm, target=target, seed=seed, compression=round(result["compression"], 3),
               accuracy_se=se, bytes=result["bytes"], choose_s=choice["choose_s"],
               choose_wall_s=choice.get("wall_s"), trained_images=result["trained_images"],
               train_s=round(result["train_s"], 1), bits=choice["plans"][target]["bits"],
               peer_setting=choice["plans"][target].get("setting"), peer_version=choice.get("version"))


def hypervolume_rows(rows: list[dict]) -> list[dict]:
    """Per task, arm and seed: the hypervolume of (test accuracy, compression) over its targets."""
    from tracking.pareto import REFERENCE, hypervolume

    points = defaultdict(list)
    for r in rows:
        if r.get("compression") is not None:
            points[r["task"], r["arm"], r["seed"]].append((r["value"], r["compression"]))
    return [row(SECTION, f"{task} {arm} seed {seed}: hypervolume", hypervolume(p, REFERENCE), task=task, arm=arm,
                seed=seed, note=f"test accuracy x compression over {len(p)} targets")
            for (task, arm, seed), p in points.items()]


def missing_row(arm: str, venv) -> dict:
    """A peer whose venv is not there: how to make it."""
    return row(SECTION, f"{arm}: not run", None, arm=arm,
               note=f"its venv {venv} is missing: `make peers` makes it")


def failed_row(task: str, arm: str, error: Exception) -> dict:
    """A peer that failed to choose: the section goes on with the others."""
    return row(SECTION, f"{task} {arm}: failed", None, task=task, arm=arm, note=str(error)[:300])
