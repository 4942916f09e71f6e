"""One small local Ray for the whole session (see ../shared/STACK.md: keep Ray small)."""
from __future__ import annotations


import pytest

TINY = {
    "name": "tiny",
    "task": {"name": "pose", "train_images": 64, "val_images": 32, "image_size": 64, "widths": [8, 16, 32, 64],
             "fpn_channels": 16, "keypoints": 6, "batch_size": 16},
    "pretrain": {"epochs": 1},
    "search": {"num_samples": 2, "max_concurrent": 2, "targets": [4, 8], "images_per_epoch": 32,
               "stage_eval_images": 16, "sensitivity_batches": 1},
}


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    import search.run  # noqa: F401 - sets Ray's environment before Ray is imported

    import ray
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024**2,
             log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_config(tmp_path):
    from search.config import config_from_dict

    def make(**sections):
        data = {key: ({**value, **sections.get(key, {})} if isinstance(value, dict) else value)
                for key, value in TINY.items()}
        data.update({k: v for k, v in sections.items() if k not in TINY})
        data["cache_dir"] = str(tmp_path / "cache")
        data["output_dir"] = str(tmp_path / "out")
        return config_from_dict(data)
    return make
