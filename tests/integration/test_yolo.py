"""A tiny Ultralytics YOLO searched through the task door: two trials on a local Ray, each
reporting its stages, exporting ONNX (the Detect head, BN folded in the speed layout) and timing
it beside the FP YOLO."""
from __future__ import annotations

import pytest

from tests.integration.conftest import plan_modules


@pytest.mark.slow
def test_a_tiny_yolo_is_searched_module_by_module(ray_session, tmp_path):
    from search.config import config_from_dict, merge
    from search.run import run_search
    from tests.integration.conftest import TINY

    task = {"name": "yolo", "model": "yolov8n.yaml", "train_images": 48, "val_images": 16, "test_images": 16,
            "image_size": 64, "batch_size": 8}
    config = config_from_dict(merge({**TINY, "task": task}, {
        "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
        "search": {"stage": {"images_per_epoch": 16, "eval_images": 16}, "deploy": {"latency_runs": 5}}}))
    result = run_search(config, progress=False, log=lambda *_: None)
    rows = result.rows
    assert [r["status"] for r in rows] == ["finished", "finished"], [r.get("error") for r in rows]
    for r in rows:
        assert plan_modules(r["plan"]) == ["backbone", "neck", "head"]
        assert 0 <= r["accuracy"] <= 1 and r["compression"] > 1
        assert r["onnx_bytes"] > 0 and r["speedup_vs_fp"] > 0          # timed beside the FP YOLO
    assert result.metric.name == "mAP"
