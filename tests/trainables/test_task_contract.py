"""The public task door: by short name, by import path, by entry point; the contract checked."""
from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest

from trainables.tasks import check_task, get_task, modules_to_ship, task_names

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes_task.py"


def _copy_example(folder: Path) -> str:
    """The example task under a fresh module name in ``folder`` (a folder on no path)."""
    name = f"user_task_{uuid.uuid4().hex[:8]}"
    shutil.copy(EXAMPLE, folder / f"{name}.py")
    return name


def test_a_task_by_import_path_is_found_beside_the_config_and_shipped(tmp_path):
    name = _copy_example(tmp_path)
    cls = get_task(f"{name}:ShapesTask", search_path=tmp_path)
    task = cls(cls.Config(train_images=8, val_images=8, test_images=8), cache_dir=str(tmp_path), device="cpu")
    check_task(task, task.config)
    assert task.metric.name == "top-1" and list(task.module_map.names) == ["backbone", "neck", "head"]
    assert modules_to_ship(f"{name}:ShapesTask") == [tmp_path / f"{name}.py"]   # workers lack it: shipped
    assert modules_to_ship("pose") == []                                       # a project package: not shipped


def test_a_broken_task_is_one_line_naming_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"^cannot import task module 'no_such_module': ModuleNotFoundError"):
        get_task("no_such_module:Task")
    name = _copy_example(tmp_path)
    with pytest.raises(ValueError, match=rf"module '{name}' has no class 'Nope'"):
        get_task(f"{name}:Nope", search_path=tmp_path)
    (tmp_path / "half_task.py").write_text("class HalfTask:\n    metric = None\n")
    with pytest.raises(ValueError, match=r"misses \['Config', 'module_names'\] of the task contract"):
        get_task("half_task:HalfTask", search_path=tmp_path)
    (tmp_path / "raising_task.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(ValueError, match=r"RuntimeError: boom$"):
        get_task("raising_task:T", search_path=tmp_path)


def test_module_names_must_match_the_module_map(tmp_path):
    name = _copy_example(tmp_path)
    cls = get_task(f"{name}:ShapesTask", search_path=tmp_path)
    task = cls(cls.Config(), cache_dir=str(tmp_path), device="cpu")
    import mqat
    task.module_map = mqat.ModuleMap({"backbone": ["backbone."], "rest": ["neck.", "head."]})
    with pytest.raises(ValueError, match=r"module_names\(\) gives \['backbone', 'neck', 'head'\] but its "
                                         r"module map has \['backbone', 'rest'\]"):
        check_task(task, task.config)
    bare = type("Bare", (), {"module_map": task.module_map})()   # a class with little of the contract
    with pytest.raises(ValueError, match=r"misses \['build_model', 'prepare_data'"):
        check_task(bare, task.config)


def test_installed_packages_register_short_names_through_entry_points(tmp_path, monkeypatch):
    name = _copy_example(tmp_path)
    dist = tmp_path / "my_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[mqat.tasks]\nshapes = {name}:ShapesTask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert task_names() == ["classify", "detect", "pose", "shapes", "yolo"]
    assert get_task("shapes").__name__ == "ShapesTask"


def test_the_pose_task_describes_the_metrics_it_reports(tiny_task):
    metrics = tiny_task.evaluate(tiny_task.build_model())
    assert tiny_task.metric.name == "ADD-0.1d" and set(tiny_task.metric.companions) <= set(metrics)


@pytest.fixture(autouse=True)
def _forget_user_modules():
    """Each test imports its own copy; leave none behind for the next."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("user_task_", "half_task", "raising_task")):
            del sys.modules[name]
