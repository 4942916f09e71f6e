import re
from pathlib import Path

import pytest

from search.config import MOVED, ConfigError, SearchConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[2]


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
    ({"search": {"storage": {"path": "ftp://host/dir"}}}, r"search.storage.path 'ftp://host/dir' has an unknown scheme 'ftp': use a directory or one of s3://"),
    ({"search": {"storage": {"path": "s3://?endpoint_override=x"}}}, r"names no bucket"),
    ([1, 2], r"mapping at the top level"),
    ({"search": {"objectives": ["accuracy", "speed"]}}, r"unknown objective 'speed'; known: accuracy, compression, latency"),
    ({"search": {"objectives": ["latency", "accuracy", "compression"]}}, r"must be \[accuracy, compression\], then any of latency"),
    ({"search": {"objectives": ["accuracy", "compression", "latency"], "deploy": {"onnx": False}}},
     r"has latency, measured on the ONNX export: set search.deploy.onnx: true"),
    ({"search": {"deploy": {"latency_runs": 0}}}, r"search.deploy.latency_runs must be at least 1"),
    ({"search": {"deploy": {"runtime": "tensorrt"}}}, r"search.deploy.runtime must be one of"),
    ({"search": {"stage": {"eval_images": 0}}}, r"search.stage.eval_images must be at least 1 \(or null for all\)"),
    ({"search": {"resources": {"cpus_per_trial": 0}}}, r"search.resources.cpus_per_trial must be > 0"),
    ({"search": {"stage": {"images": 3}}}, r"unknown key search.stage.images; did you mean 'eval_images'\?"),
    ({"search": {"budget_trials": 0}}, r"search.budget_trials must be > 0"),
    ({"search": {"method": "uniformm"}}, r"search.method must be one of \['mqat', 'uniform', 'ilp-only'\], but got 'uniformm'; did you mean 'uniform'\?"),
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


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_each_flat_key_of_earlier_versions_names_its_new_place(old, new):
    with pytest.raises(ConfigError, match=rf"^search\.{old} has moved to search\.{re.escape(new)}: write it there$"):
        config_from_dict({"search": {old: 1}})


RETIRED = r"MOASHA early stopping was retired \(measured, it never paid: docs/benchmarks\.md\); remove it"


@pytest.mark.parametrize("search, match", [
    ({"scheduler": {"name": "moasha"}}, rf"^search\.scheduler: {RETIRED}$"),
    ({"scheduler": {"name": "moasha", "rungs": [1], "eta": 3}}, rf"^search\.scheduler: {RETIRED}$"),
    ({"scheduler": "moasha"}, rf"^search\.scheduler: {RETIRED}$"),
    # a config copied from an earlier quickstart: its budget has a new place, named in the same line
    ({"scheduler": {"name": "none", "budget_trials": 12}},
     rf"^search\.scheduler: {RETIRED}; its budget_trials is now search\.budget_trials$"),
    ({"moasha_rungs": [0, 1]}, rf"^search\.moasha_rungs: {RETIRED}$"),
    ({"moasha_eta": 2}, rf"^search\.moasha_eta: {RETIRED}$"),
])
def test_a_config_that_asks_for_moasha_is_told_it_was_retired(search, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"search": search})


def test_the_stage_budget_is_a_key_of_the_search():
    assert config_from_dict({"search": {"budget_trials": 12}}).search.budget_trials == 12.0
    assert config_from_dict({}).search.budget_trials is None


@pytest.mark.parametrize("path", sorted([*ROOT.glob("configs/*.yaml"), *ROOT.glob("examples/*.yaml")]),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.search.stage.images_per_epoch and config.search.resources.cpus_per_trial > 0


def test_a_trial_and_the_config_share_one_set_of_stage_and_deploy_defaults():
    from trainables.trainable import TrialSetup

    setup = TrialSetup("pose", None, "data", {})
    assert setup.stage == SearchConfig().stage and setup.deploy == SearchConfig().deploy
    assert SearchConfig().stage.images_per_epoch == 512     # (it was None for a trial, 512 in a config)


def test_the_default_sampler_is_the_ilp_guided_one():
    """The replay of the recorded table and three real quickstart searches put it ahead of TPE
    (docs/benchmarks.md): a config that names no sampler gets it, the quickstart names it."""
    assert config_from_dict({}).search.sampler == "ilp"
    assert load_config(Path("configs/quickstart.yaml")).search.sampler == "ilp"
