"""One small local Ray for the whole session (see ../shared/STACK.md: keep Ray small), and the
tiny config the integration tests run."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml

from tracking.report import reports as read_reports  # noqa: F401  (the integration tests read them)

TINY = {
    "name": "tiny",
    "task": {"name": "pose", "train_images": 64, "val_images": 32, "test_images": 32, "image_size": 64, "widths": [8, 16, 32, 64],
             "fpn_channels": 16, "keypoints": 6, "batch_size": 16},
    "pretrain": {"epochs": 1, "require_above_baseline": False},  # one epoch learns little: searched on purpose
    "search": {"num_samples": 2, "max_concurrent": 2, "targets": [4, 8], "sensitivity_batches": 1,
               "stage": {"images_per_epoch": 32, "eval_images": 16}},
}


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    import ray

    from search import ray_env

    ray_env.apply()  # Ray's environment before Ray starts
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024**2,
             log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_config(tmp_path):
    from search.config import config_from_dict, merge

    def make(**sections):
        return config_from_dict(merge(TINY, {**sections, "cache_dir": str(tmp_path / "cache"),
                                             "output_dir": str(tmp_path / "out")}))
    return make


def write_tiny_config(tmp_path: Path, search: dict | None = None, **sections) -> Path:
    """The tiny config as a YAML file, its cache and output under ``tmp_path``, for the CLI."""
    from search.config import merge

    config = merge(TINY, {"search": search or {}, **sections,
                          "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def short_ray_tmp() -> str:
    """A Ray temp dir for a subprocess: under /tmp, since AF_UNIX socket paths must stay short
    (about 107 bytes), which pytest's tmp_path is not."""
    return tempfile.mkdtemp(prefix="ray", dir="/tmp")


def plan_modules(plan: str) -> list[str]:
    """The modules a trial's plan (its JSON) gives bits to, in the network's order: each unit of a
    group plan is named ``<module>.<path>``."""
    import json

    units = json.loads(plan)["weight_bits"]
    return list(dict.fromkeys(unit.split(".")[0] for unit in units))
