"""A tiny rendered pose task, for the tests of the task and of the recorded benchmark."""
import pytest

from trainables.pose import PoseConfig, PoseTask


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory):
    """A pose task on a few rendered images (cached for the whole session)."""
    config = PoseConfig(train_images=96, val_images=32, test_images=32, image_size=64, batch_size=16, widths=(8, 16, 32, 64),
                        fpn_channels=16, keypoints=8)
    return PoseTask(config, cache_dir=tmp_path_factory.mktemp("cache"), device="cpu", progress=False)
