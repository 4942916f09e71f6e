"""Early stopping: the hypervolume reached at an equal compute budget (the module stages of N full
trials, ``search.scheduler.budget_trials``), by the mqat search without early stopping, with MOASHA
(``search.scheduler: moasha``, which then runs more trials in the same budget), and by random
search; over several seeds. Also how well a trial's accuracy after each stage ranks its final
accuracy (Spearman), from the full trials of the search without early stopping.

The task is the user-task example (``examples/shapes.yaml``): seconds-long trials, so that
the arms x three seeds fit in minutes on 2 cores. Hypervolumes, reference (accuracy 0,
compression 1x): of the validation front (what each search optimised), and of the same front
models scored on the held-out test split (what grades them: the images that chose a front
flatter it).
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import yaml

from tracking.pareto import REFERENCE, hypervolume

from .timing import row

SECTION = "early stopping"
ROOT = Path(__file__).resolve().parent
EXAMPLE = ROOT.parent / "examples" / "shapes.yaml"
ARMS = {"mqat": {}, "mqat + moasha": {"scheduler": {"name": "moasha"}},
        "mqat + moasha, rung 1 only": {"scheduler": {"name": "moasha", "rungs": [1]}},
        "random": {"sampler": "random", "ilp_seeds": False}}


def _config(name: str, seed: int, budget: int, quick: bool, **search):
    from search.config import config_from_dict, merge

    data = yaml.safe_load(EXAMPLE.read_text())
    if quick:
        data["task"] = {**data["task"], "train_images": 800, "val_images": 200, "test_images": 200}
        # three epochs leave the shapes model near its baseline (top-1 0.290 against 0.210): the
        # FP check would refuse it, and the quick run times the mechanics, not the front
        data["pretrain"] = {**data["pretrain"], "epochs": 3, "require_above_baseline": False}
        data["search"] = merge(data["search"], {"stage": {"images_per_epoch": 400, "eval_images": 100}})
    moasha = search.get("scheduler", {}).get("name") == "moasha"
    data.update(name=name, cache_dir=str(ROOT / "runs" / "cache"), output_dir=str(ROOT / "runs" / "early-stopping"),
                tracking={"enabled": False})
    data["search"] = merge(data["search"], {"seed": seed, "scheduler": {"budget_trials": budget},
                                            "num_samples": 4 * budget if moasha else budget})
    data["search"] = merge(data["search"], search)
    return config_from_dict(data, task_dir=EXAMPLE.parent)


def _spearman(search_path: Path) -> dict[int, float]:
    """Rank correlation of each stage's accuracy with the final one, over a search's full trials."""
    from scipy.stats import spearmanr

    stages: dict[int, dict[str, float]] = {}
    finals: dict[str, float] = {}
    for trial in search_path.iterdir():
        result = trial / "result.json"
        reports = [json.loads(x) for x in result.read_text().splitlines() if x.strip()] if result.is_file() else []
        if not reports or not reports[-1].get("final"):
            continue
        finals[trial.name] = reports[-1]["accuracy"]
        for r in reports[:-1]:
            stages.setdefault(r["stage"], {})[trial.name] = r["accuracy"]
    out = {}
    for stage, values in sorted(stages.items()):
        names = sorted(set(values) & set(finals))
        if len(names) >= 4:
            out[stage] = float(spearmanr([values[n] for n in names], [finals[n] for n in names])[0])
    return out


def run(quick: bool = False) -> list[dict]:
    from .searches import searched

    seeds = [0] if quick else [0, 1, 2]
    budget = 6 if quick else 12
    volumes: dict[str, list[float]] = {arm: [] for arm in ARMS}
    tested: dict[str, list[float]] = {arm: [] for arm in ARMS}
    counts: dict[str, list[tuple[int, int]]] = {arm: [] for arm in ARMS}
    correlations: dict[int, list[float]] = {}
    for seed in seeds:
        for arm, settings in ARMS.items():
            label = arm.replace(" + ", "-").replace(", rung 1 only", "-r1")
            config = _config(f"es-{label}-{seed}", seed, budget, quick, **settings)
            start = time.perf_counter()
            result = searched(config, progress=False, log=lambda *_: None)
            done = [(r["accuracy"], r["compression"]) for r in result.rows if r["status"] == "finished"]
            volumes[arm].append(hypervolume(done, REFERENCE) if done else 0.0)
            front = [(r["test_accuracy"], r["compression"]) for r in result.rows if r["test_accuracy"] is not None]
            tested[arm].append(hypervolume(front, REFERENCE) if front else 0.0)
            stopped = sum(r["status"] == "stopped" for r in result.rows)
            counts[arm].append((len(done), stopped))
            print(f"[bench] {arm} seed {seed}: hypervolume {volumes[arm][-1]:.4f} (test {tested[arm][-1]:.4f}), {len(done)} finished, "
                  f"{stopped} stopped, {time.perf_counter() - start:.0f} s", flush=True)
            if arm == "mqat":
                for stage, rho in _spearman(result.path).items():
                    correlations.setdefault(stage, []).append(rho)
    rows = []
    reference = statistics.mean(volumes["mqat"])
    spread_full = statistics.stdev(volumes["mqat"]) if len(seeds) > 1 else 0.0
    for arm, values in volumes.items():
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        goal = "above mqat without early stopping by more than its spread" if "moasha" in arm else None
        finished = statistics.mean(c[0] for c in counts[arm])
        stopped = statistics.mean(c[1] for c in counts[arm])
        rows.append(row(SECTION, f"{arm}: hypervolume, budget {budget} trials x {len(seeds)} seeds", mean,
                        baseline="mqat", ratio=mean / reference if reference else None, goal=goal,
                        met=(mean - reference > max(spread, spread_full)) if goal else None, spread=spread,
                        values=[round(v, 4) for v in values],
                        note=f"{finished:.1f} trials finished, {stopped:.1f} stopped early per search"))
    test_reference = statistics.mean(tested["mqat"])
    for arm, values in tested.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row(SECTION, f"{arm}: hypervolume of its front on the test split", statistics.mean(values),
                        baseline="mqat", ratio=statistics.mean(values) / test_reference if test_reference else None,
                        spread=spread, values=[round(v, 4) for v in values]))
    for stage, rhos in sorted(correlations.items()):
        rows.append(row(SECTION, f"Spearman, accuracy after stage {stage} vs final (mqat arm)",
                        statistics.mean(rhos), spread=statistics.stdev(rhos) if len(rhos) > 1 else 0.0,
                        values=[round(r, 3) for r in rhos]))
    return rows
