"""cluster.yaml passes Ray's own launcher validation, offline; configs/cluster.yaml is a valid config."""
import copy

import pytest
import yaml


def _validate(config):
    from ray.autoscaler._private.util import prepare_config, validate_config
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_launcher_config_is_valid():
    with open("cluster.yaml") as f:
        config = yaml.safe_load(f)
    _validate(config)
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}   # no trials on the head
    assert "g5" in config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"]


def test_the_validator_catches_a_wrong_head_type():
    with open("cluster.yaml") as f:
        config = yaml.safe_load(f)
    config["head_node_type"] = "nonexistent"
    with pytest.raises(ValueError, match="head_node_type"):
        _validate(config)


@pytest.mark.parametrize("path", ["configs/cluster.yaml", "configs/detect-cluster.yaml"])
def test_cluster_search_config_asks_for_gpus_and_shared_storage(path):
    from search.config import load_config
    config = load_config(path)
    assert config.search.resources.gpus_per_trial == 1 and config.search.storage.shared
    assert config.search.storage.path.startswith("/mnt/shared") and config.cache_dir.startswith("/mnt/shared")
