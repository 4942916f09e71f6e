"""The search and its records know no task: every task-specific name comes through the task's
``metric`` (and module map), so a second task needs no special case in search/ or tracking/."""
from pathlib import Path

from trainables.pose import PoseConfig, PoseTask

ROOT = Path(__file__).resolve().parents[1]


def test_no_task_specific_name_in_the_generic_layers(tmp_path):
    metric = PoseTask(PoseConfig(), cache_dir=tmp_path, device="cpu", progress=False).metric
    names = {"pose", "satellite", "keypoint", "ADD-", metric.name, *metric.companions, *metric.companions.values()}
    found = [(str(path.relative_to(ROOT)), name) for folder in ("search", "tracking", "spaces")
             for path in sorted((ROOT / folder).rglob("*.py")) for name in names
             if name.lower() in path.read_text().lower()]
    assert not found, found
