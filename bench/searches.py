"""Real searches for the benchmark: the quickstart task (its cached FP model) with cheaper
trials, or the test suite's tiny task in ``--quick`` mode. Each run goes through ``run_search``."""
from __future__ import annotations

import functools
import time
from dataclasses import replace
from pathlib import Path

import yaml

from search.config import config_from_dict, merge

ROOT = Path(__file__).resolve().parent
QUICKSTART = ROOT.parent / "configs" / "quickstart.yaml"
TINY = {"name": "tiny", "task": {"name": "pose", "train_images": 256, "val_images": 64, "test_images": 64, "image_size": 64,
                                 "widths": [8, 16, 32, 64], "fpn_channels": 16, "keypoints": 6,
                                 "batch_size": 16},
        "pretrain": {"epochs": 2, "require_above_baseline": False},  # the quick bench times mechanics
        "search": {"targets": [4, 8], "stage": {"images_per_epoch": 32, "eval_images": 32},
                   "sensitivity_batches": 1}}
#: Cheaper trials than the quickstart's (fine-tuning and intermediate scores on fewer images);
#: the final model of every trial is still scored on all 2,000 validation images.
FULL_SEARCH = {"stage": {"images_per_epoch": 256, "eval_images": 250}}


def base_config(quick: bool, *, cheap: bool = True) -> dict:
    """The tiny task (``quick``) or the quickstart's, with cheaper trials if ``cheap``."""
    if quick:
        return {**TINY, "cache_dir": str(ROOT / "runs" / "cache"), "output_dir": str(ROOT / "runs" / "tiny")}
    data = yaml.safe_load(QUICKSTART.read_text())
    data["search"] = merge(data.get("search") or {}, FULL_SEARCH if cheap else {})
    data["output_dir"] = str(ROOT / "runs" / "quickstart")
    return data


def module_level(data: dict) -> dict:
    """``data`` at one bit-width a module (``space.granularity: module``): for the sections whose
    arms are module plans (W8-8-8, 4-4-4 sensitive-first, ...)."""
    return {**data, "space": {**(data.get("space") or {}), "granularity": "module"}}


TINY_DETECT = {"name": "tiny-detect", "task": {"name": "detect", "train_images": 256, "val_images": 64, "test_images": 64,
                                               "widths": [8, 8, 16, 16, 16], "neck_channels": 16, "batch_size": 16},
               "pretrain": {"epochs": 2, "require_above_baseline": False},
               "search": {"targets": [4, 8], "stage": {"images_per_epoch": 64, "eval_images": 32},
                          "sensitivity_batches": 1}}
#: an Ultralytics YOLOv8n (needs the ``yolo`` extra)
TINY_YOLO = {"name": "tiny-yolo", "task": {"name": "yolo", "model": "yolov8n.yaml", "train_images": 64, "val_images": 32,
                                         "test_images": 32, "image_size": 64, "batch_size": 8},
             "pretrain": {"epochs": 1, "require_above_baseline": False},
             "search": {"targets": [4, 8], "stage": {"images_per_epoch": 16, "eval_images": 16},
                        "sensitivity_batches": 1}}


def ready_config(name: str, tiny: dict, quick: bool) -> dict:
    """configs/<name>.yaml (its data and FP model cached where it says), or ``tiny`` in the bench's cache."""
    if quick:
        return {**tiny, "cache_dir": str(ROOT / "runs" / "cache"), "output_dir": str(ROOT / "runs" / tiny["name"])}
    return {**yaml.safe_load((ROOT.parent / "configs" / f"{name}.yaml").read_text()), "output_dir": str(ROOT / "runs" / name)}


#: task name -> its bench config (``quick``: a tiny one)
TASK_CONFIGS = {"pose": lambda quick: base_config(quick, cheap=False),
                "detect": functools.partial(ready_config, "detect", TINY_DETECT),
                "yolo": functools.partial(ready_config, "yolo", TINY_YOLO)}


def searched(config, **kwargs):
    """``run_search``, refusing a search whose trials all failed: a section would otherwise print
    a hypervolume of 0 as if it had measured one (a quick run once did, every trial missing its
    task module)."""
    from search.run import run_search

    result = run_search(config, **kwargs)
    failed = [r for r in result.rows if r["status"] == "failed"]
    if failed and len(failed) == len(result.rows):
        raise RuntimeError(f"bench: every trial of {config.name!r} failed ({len(failed)}); the first with: "
                           f"{failed[0].get('error')}")
    return result


def run(quick: bool, name: str, **search) -> dict:
    """One search; returns its wall time, rows and settings."""
    data = base_config(quick)
    data = {**data, "name": name, "search": merge(data.get("search") or {}, search),
            "tracking": {"enabled": False}}
    config = config_from_dict(data)
    start = time.perf_counter()
    result = searched(config, progress=False, log=lambda *_: None)
    wall = time.perf_counter() - start
    return {"wall": wall, "rows": result.rows, "path": str(result.path),
            "concurrency": config.search.max_concurrent,
            "fp_accuracy": result.prepared.fp_metrics.get("accuracy"),
            "busy": _busy_seconds(result.rows)}


def _busy_seconds(rows: list[dict]) -> float:
    """Seconds the trials spent in MQAT (training and evaluating), from their final reports."""
    import json

    total = 0.0
    for row in rows:
        lines = (Path(row["path"]) / "result.json").read_text().splitlines() if row["path"] else []
        finals = [json.loads(line) for line in lines if line.strip() and '"final": true' in line]
        total += sum(f.get("time_mqat_s", 0.0) for f in finals)
    return total


__all__ = ["base_config", "module_level", "replace", "run"]
