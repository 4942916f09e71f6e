"""The yolo task's door: an Ultralytics YOLO split into backbone / neck / Detect as its YAML says,
trained with its own loss, and every way a config can be wrong one line and exit 2 under --check."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
import yaml

from trainables.yolo import YoloConfig, YoloTask

TINY = {"train_images": 32, "val_images": 16, "test_images": 16, "image_size": 64, "batch_size": 8}


def test_the_network_splits_as_its_yaml_and_trains_with_ultralytics_loss(tmp_path):
    torch.manual_seed(0)
    task = YoloTask(YoloConfig(**TINY), cache_dir=tmp_path, device="cpu", progress=False)
    model = task.build_model()
    from search.prepare import weight_counts

    counts, kept = weight_counts(model, task.module_map)        # every conv in one module
    shares = {m: n / sum(counts.values()) for m, n in counts.items()}
    assert task.module_map.prefixes["head"] == ("model.22.",)   # Detect, yolov8n's last layer
    assert 0.40 < shares["backbone"] < 0.44 and 0.31 < shares["neck"] < 0.35 and 0.23 < shares["head"] < 0.27
    assert task.module_map.fixed_fp_layers(model) == {"model.0.conv", "model.22.dfl.conv"} and kept == 448
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    first = task.train_epoch(model, optimizer, lambda: None)
    for _ in range(3):
        last = task.train_epoch(model, optimizer, lambda: None)
    assert last < first                                          # Ultralytics' loss, learning
    metrics = task.evaluate(model)
    assert {"accuracy", "accuracy_se", "map_50"} <= set(metrics) and 0 <= metrics["accuracy"] <= 1


def _check(tmp_path, model: str, prelude: str = "") -> tuple[int, str, float]:
    config = {"name": "y", "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
              "task": {"name": "yolo", "model": model, **TINY}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    script = prelude + "import sys; from search.cli import main; sys.exit(main(['search', '--config', sys.argv[1], '--check']))"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, check=False, env=os.environ)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()   # nothing written
    return done.returncode, done.stderr.strip(), time.monotonic() - start


@pytest.mark.parametrize("model, prelude, message", [
    ("nope.yaml", "", "mqat: error: task.model: Ultralytics cannot build 'nope.yaml': FileNotFoundError"),
    ("missing/best.pt", "", "mqat: error: task.model: 'missing/best.pt' does not exist"),
    ("yolov8n.yaml", "import sys; sys.modules['ultralytics'] = None\n",
     "mqat: error: task yolo needs Ultralytics (AGPL-3.0), an optional extra: pip install -e '.[yolo]'"),
], ids=["unknown-yaml", "missing-pt", "missing-extra"])
def test_a_bad_model_or_a_missing_extra_is_one_line_and_exit_2_within_seconds(tmp_path, model, prelude, message):
    code, stderr, seconds = _check(tmp_path, model, prelude)
    assert code == 2 and len(stderr.splitlines()) == 1 and stderr.startswith(message), stderr
    assert seconds < 10


def test_detections_are_suppressed_without_torchvisions_compiled_operators(tmp_path, monkeypatch):
    from trainables.classify.torchvision_compat import import_torchvision

    def unavailable(*args, **kwargs):   # as in CI: a CUDA torchvision beside the CPU torch
        raise RuntimeError("Couldn't load custom C++ ops")

    monkeypatch.setattr(import_torchvision().ops, "nms", unavailable)
    task = YoloTask(YoloConfig(**TINY), cache_dir=tmp_path, device="cpu", progress=False)
    columns = [  # x, y, w, h, then three class scores: two overlapping class-0 boxes and one class-1 box
        [10, 10, 8, 8, 0.9, 0.0, 0.0],
        [10.5, 10, 8, 8, 0.8, 0.0, 0.0],
        [40, 40, 6, 6, 0.0, 0.7, 0.0],
    ]
    predictions = torch.tensor(columns).T[None]            # (1, 4 + C, 3) as Detect returns
    ((boxes, scores, labels),) = task.decode((predictions, None))
    assert torch.allclose(scores, torch.tensor([0.9, 0.7])) and labels.tolist() == [0, 1]
    assert torch.allclose(boxes, torch.tensor([[6.0, 6.0, 14.0, 14.0], [37.0, 37.0, 43.0, 43.0]]))
