import pytest

from search.config import ConfigError, config_from_dict, load_config


def test_quickstart_config_is_valid():
    config = load_config("configs/quickstart.yaml")
    assert config.task_name == "pose" and config.task.val_images >= 2000
    assert config.pretrain.epochs >= 1


@pytest.mark.parametrize("data, match", [
    ({"taks": {}}, r"unknown key taks; did you mean 'task'\?"),
    ({"task": {"name": "pose", "val_image": 10}}, r"unknown key task.val_image; did you mean 'val_images'\?"),
    ({"task": {"name": "segmentation"}}, r"unknown task 'segmentation'"),
    ({"task": {"fpn_channels": "wide"}}, r"task.fpn_channels must be an integer, but got 'wide'"),
    ({"task": {"widths": [16, 0, 32, 64]}}, r"task.widths must be 4 positive integers"),
    ({"task": {"source": "bop"}}, r"bop_path is required"),
    ({"task": {"keypoints": 3}}, r"at least 4"),
    ({"pretrain": {"epochs": -1}}, r"pretrain.epochs must be an integer >= 1"),
    ({"pretrain": {"lr": "fast"}}, r"pretrain.lr must be a number"),
    ({"device": "tpu"}, r"device must be"),
    ({"search": {"storage_path": "ftp://host/dir"}}, r"unknown scheme 'ftp': use a directory or one of s3://"),
    ({"search": {"storage_path": "s3://?endpoint_override=x"}}, r"names no bucket"),
    ([1, 2], r"mapping at the top level"),
    ({"search": {"objectives": ["accuracy", "speed"]}}, r"unknown objective 'speed'; known: accuracy, compression, latency"),
    ({"search": {"objectives": ["latency", "accuracy", "compression"]}}, r"must be \[accuracy, compression\], then any of latency"),
    ({"search": {"objectives": ["accuracy", "compression", "latency"], "onnx": False}}, r"set search.onnx: true"),
    ({"search": {"latency_runs": 0}}, r"search.latency_runs must be at least 1"),
    ({"search": {"scheduler": "asha"}}, r"search.scheduler must be one of \['none', 'moasha'\]"),
    ({"search": {"scheduler": "moasha", "moasha_rungs": [3]}}, r"the network has 3 module stages \(0 to 2\)"),
    ({"search": {"scheduler": "moasha", "method": "uniform"}}, r"use method mqat"),
    ({"search": {"moasha_eta": 1}}, r"search.moasha_eta must be >= 2"),
    ({"search": {"budget_trials": 0}}, r"search.budget_trials must be > 0"),
    ({"search": {"sampler": "gps"}}, r"search.sampler must be one of \['tpe', 'gp', 'nsga2', 'random', 'ilp'\], but got 'gps'; did you mean 'gp'\?"),
    ({"task": {"\r": 0}}, r"unknown key task\.'\\r'; known keys"),  # found by hypothesis: one line
])
def test_bad_configs_name_the_problem(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
