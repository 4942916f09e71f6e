"""The FP model a search stands on: BN statistics re-estimated where that scores higher, a model
at its baseline refused (one line, exit 2), and a cache that follows the task's code."""
from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from trainables.pretrain import PretrainConfig, baseline_problem, pretrain
from trainables.tasks import get_task

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes_task.py"
SMALL = {"train_images": 2000, "val_images": 500, "test_images": 500, "width": 16}


def _example(folder: Path, *, edit=lambda source: source) -> str:
    name = f"fp_task_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(edit(EXAMPLE.read_text()))
    return name


def _slow_bn(source: str) -> str:
    """The example's network with torchvision MobileNetV3's BN momentum (0.01) and less."""
    return source.replace("nn.BatchNorm2d(cout)", "nn.BatchNorm2d(cout, momentum=0.001)")


def test_stale_bn_statistics_are_re_estimated_and_the_better_model_kept(tmp_path):
    cls = get_task(f"{_example(tmp_path, edit=_slow_bn)}:ShapesTask", search_path=tmp_path)
    task = cls(cls.Config(**SMALL), cache_dir=str(tmp_path), device="cpu")
    result = pretrain(task, PretrainConfig(epochs=4, lr=3e-3), cache_dir=tmp_path, progress=False)
    m = result.metrics
    assert m["bn_reestimated"] is True
    assert m["accuracy"] > m["accuracy_trained_bn"] + 0.15   # stale statistics cost most of the score
    assert baseline_problem(m, "top-1") is None

    kept = pretrain(task, PretrainConfig(epochs=4, lr=3e-3, reestimate_bn=False), cache_dir=tmp_path,
                    progress=False).metrics
    assert kept["bn_reestimated"] is False and abs(kept["accuracy"] - m["accuracy_trained_bn"]) < 1e-9
    assert baseline_problem(kept, "top-1") is not None          # the stale model is at chance: refused


def _config(folder: Path, name: str, epochs: int = 4, **pretrain_keys) -> Path:
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fp-check", "output_dir": str(folder / "runs"), "cache_dir": str(folder / "cache"),
        "task": {"name": f"{name}:ShapesTask", **SMALL},
        "pretrain": {"epochs": epochs, **pretrain_keys},
        "search": {"targets": [4, 8], "sensitivity_batches": 1}}))
    return path


def _plan(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", "plan", "--config", str(config), "--quiet"],
                          check=False, capture_output=True, text=True, timeout=600, cwd=config.parent)


def test_a_search_refuses_an_fp_model_at_its_baseline_in_one_line(tmp_path):
    name = _example(tmp_path)
    result = _plan(_config(tmp_path, name, epochs=1, lr=1e-9))            # a learning rate that learns nothing
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("mqat: error: the FP model scores top-1 ")
    assert "not clearly above the baseline" in line and "pretrain.require_above_baseline: false" in line
    assert not (tmp_path / "runs").exists()                     # nothing of a search written
    allowed = _plan(_config(tmp_path, name, epochs=1, lr=1e-9, require_above_baseline=False))
    assert allowed.returncode == 0, allowed.stderr
    assert "ILP plans" in allowed.stdout and "baseline (a model that learned nothing): top-1" in allowed.stdout


def test_a_changed_task_file_retrains_and_every_run_says_where_its_fp_model_came_from(tmp_path):
    name = _example(tmp_path)
    config = _config(tmp_path, name, lr=3e-3)
    first = _plan(config)
    assert first.returncode == 0, first.stderr
    assert "FP model: top-1" in first.stdout and "(trained now:" in first.stdout
    again = _plan(config)
    assert again.returncode == 0 and "FP model: top-1" in again.stdout and "(cached:" in again.stdout
    task_file = tmp_path / f"{name}.py"
    task_file.write_text(task_file.read_text().replace("return ShapesNet(self.config.width)",
                                                       "return ShapesNet(self.config.width + 2)"))
    changed = _plan(config)
    assert changed.returncode == 0, changed.stderr
    assert "(trained now:" in changed.stdout                    # the new network, not the stale checkpoint
    assert len(list((tmp_path / "cache" / "pretrain").glob("*/model.pt"))) == 2


def test_the_cache_key_follows_the_code_of_the_task_package_not_only_its_class_file(tmp_path):
    from trainables.pretrain import cache_key

    package = tmp_path / f"pkg_{uuid.uuid4().hex[:8]}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, package / "task.py")
    (package / "helper.py").write_text("WIDTH = 8\n")
    cls = get_task(f"{package.name}.task:ShapesTask", search_path=tmp_path)
    task = cls(cls.Config(**SMALL), cache_dir=str(tmp_path), device="cpu")
    before = cache_key(task, PretrainConfig())
    (package / "helper.py").write_text("WIDTH = 16\n")
    assert cache_key(task, PretrainConfig()) != before
