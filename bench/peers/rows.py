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
    x_fp = f", x FP {result['speedup_vs_fp']:.2f}" if result.get("speedup_vs_fp") else ""
    note = (f"{result['compression']:.2f}x, +- {se:.3f} test, {result['bytes']:,} B{x_fp}, chose in "
            f"{choice['choose_s']:.0f} s") if se is not None else f"{result['compression']:.2f}x"
    return row(SECTION, f"{task} {arm} {target:g}x seed {seed}: test accuracy", result["accuracy"], note=note,
               task=task, arm=arm, target=target, seed=seed, compression=round(result["compression"], 3),
               accuracy_se=se, bytes=result["bytes"], choose_s=choice["choose_s"],
               choose_wall_s=choice.get("wall_s"), trained_images=result["trained_images"],
               train_s=round(result["train_s"], 1), speedup_vs_fp=result.get("speedup_vs_fp"),
               speedup_vs_fp_batch=result.get("speedup_vs_fp_batch"), latency_provider=result.get("latency_provider"),
               bits=choice["plans"][target]["bits"],
               peer_setting=choice["plans"][target].get("setting"), peer_version=choice.get("version"))


def front_rows(task: str, arm: str, seed: int, trials: list[dict], wall_s: float, images_per_trial: int) -> list[dict]:
    """A search's front on the test split, a row per point, and one row of its compute: its trials'
    training images and its wall time (Ray's start, the sensitivity table, the trials, the test scores)."""
    finished = [t for t in trials if t["status"] == "finished"]
    front = sorted((t for t in finished if t["pareto"]), key=lambda t: t["compression"])
    out = [row(SECTION, f"{task} {arm} seed {seed}: test accuracy", t["test_accuracy"],
               note=f"{t['compression']:.2f}x, +- {t['test_accuracy_se']:.3f} test, {t['model_bytes']:,} B, "
                    f"x FP {t['speedup_vs_fp']:.2f}" if t.get("speedup_vs_fp") else f"{t['compression']:.2f}x",
               task=task, arm=arm, seed=seed, compression=round(t["compression"], 3),
               accuracy_se=t["test_accuracy_se"], bytes=t["model_bytes"], speedup_vs_fp=t.get("speedup_vs_fp"),
               speedup_vs_fp_batch=t.get("speedup_vs_fp_batch"), latency_provider=t.get("latency_provider"),
               trial=t["trial_id"])
           for t in front]
    images = images_per_trial * len(finished)
    out.append(row(SECTION, f"{task} {arm} seed {seed}: compute", images, unit="images",
                   note=f"{len(finished)} of {len(trials)} trials finished, {wall_s:.0f} s wall",
                   task=task, arm=arm, seed=seed, trials=len(trials), trained_images=images, wall_s=round(wall_s, 1)))
    return out


def points(rows: list[dict]) -> dict[tuple[str, str, int], list[dict]]:
    """(task, arm, seed) -> its scored points (rows with a compression and a test accuracy)."""
    out = defaultdict(list)
    for r in rows:
        if r.get("compression") is not None and r.get("value") is not None:
            out[r["task"], r["arm"], r["seed"]].append(r)
    return out


def dominates(q: dict, p: dict, margin: float = 2.0) -> bool:
    """``q`` at least as compressed as ``p`` and more accurate by over ``margin`` standard errors
    of the difference (the two test scores' errors combined)."""
    se = ((q["accuracy_se"] or 0.0) ** 2 + (p["accuracy_se"] or 0.0) ** 2) ** 0.5
    return q["compression"] >= p["compression"] and q["value"] - p["value"] > margin * se


def dominance_rows(rows: list[dict], ours: tuple[str, ...]) -> list[dict]:
    """Per task, each of our arms against each other arm, seed by seed: how many of the other's
    points one of ours dominates by more than two standard errors, and how many of ours one of its
    points dominates."""
    found = points(rows)
    out = []
    for task in sorted({t for t, _, _ in found}):
        arms = sorted({a for t, a, _ in found if t == task})
        for mine in (a for a in ours if a in arms):
            for other in (a for a in arms if a not in ours):
                seeds = sorted({s for t, a, s in found if t == task and a == other}
                               & {s for t, a, s in found if t == task and a == mine})
                theirs = [(s, p) for s in seeds for p in found[task, other, s]]
                mine_points = [(s, q) for s in seeds for q in found[task, mine, s]]
                won = sum(any(dominates(q, p) for q in found[task, mine, s]) for s, p in theirs)
                lost = sum(any(dominates(p, q) for p in found[task, other, s]) for s, q in mine_points)
                out.append(row(SECTION, f"{task} {mine} dominates {other}", won, unit="points",
                               note=f"{won} of {len(theirs)} of its points by > 2 SE (same seed); "
                                    f"{lost} of our {len(mine_points)} dominated by one of its",
                               task=task, arm=mine, other=other, dominated=won, of=len(theirs),
                               lost=lost, of_ours=len(mine_points)))
    return out


def hypervolume_rows(rows: list[dict]) -> list[dict]:
    """Per task, arm and seed: the hypervolume of (test accuracy, compression) over its targets."""
    from tracking.pareto import REFERENCE, hypervolume

    return [row(SECTION, f"{task} {arm} seed {seed}: hypervolume",
                hypervolume([(r["value"], r["compression"]) for r in p], REFERENCE), task=task, arm=arm,
                seed=seed, note=f"test accuracy x compression over {len(p)} points")
            for (task, arm, seed), p in points(rows).items()]


def missing_row(arm: str, venv) -> dict:
    """A peer whose venv is not there: how to make it."""
    return row(SECTION, f"{arm}: not run", None, arm=arm,
               note=f"its venv {venv} is missing: `make peers` makes it")


def failed_row(task: str, arm: str, error: Exception) -> dict:
    """A peer that failed to choose: the section goes on with the others."""
    return row(SECTION, f"{task} {arm}: failed", None, task=task, arm=arm, note=str(error)[:300])
