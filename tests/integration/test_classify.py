"""The built-in classify task, no Python of the user's: real torchvision networks on real images
(scikit-learn's handwritten digits written out as an image folder), searched on a local Ray, and a
user's own network builder, importing a file beside it, searched on a two-node cluster."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import plan_modules, read_reports
from tests.integration.test_own_task import SCRIPT, _driver
from tracking.table import read_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("digits_to_folder", EXAMPLES / "digits_to_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("digits")
    assert module.write_digits(folder) == 1797
    return folder


def _config(tmp_path: Path, digits: Path, model: str, **task_keys) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    config = {
        "name": "digits", "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
        "task": {"name": "classify", "model": model, "model_args": {"num_classes": 10}, "data": str(digits),
                 "image_size": 32, **task_keys},
        "pretrain": {"epochs": 4, "lr": 0.002},
        "search": {"num_samples": 2, "max_concurrent": 2, "targets": [4, 8], "sensitivity_batches": 1,
                   "stage": {"images_per_epoch": 128, "eval_images": 128, "calibration_batches": 2, "bn_batches": 4},
                   "storage": {"shared": True}},
        "space": {"weight_bits": [2, 4, 8], "lr": [1e-5, 1e-4], "epochs_per_stage": 1},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(tmp_path: Path) -> list[dict]:
    (experiment,) = (tmp_path / "out" / "ray").glob("digits-*")
    return read_table(experiment / "trials.parquet")


@pytest.mark.slow
def test_torchvisions_mobilenet_v3_is_searched_on_the_digits_folder_its_bn_statistics_re_estimated(tmp_path, digits):
    config = _config(tmp_path, digits, "torchvision.models:mobilenet_v3_small")
    code, stdout, stderr = _driver(["-m", "search.cli", "search", "--config", str(config), "--quiet"], tmp_path)
    assert code == 0, stderr[-3000:]
    # torchvision's BN momentum (0.01) leaves stale statistics after a short pretraining: re-estimated
    assert "BatchNorm statistics re-estimated from training batches: top-1" in stdout
    fp_line = next(line for line in stdout.splitlines() if line.startswith("FP model: top-1 "))
    assert float(fp_line.split()[3]) > 0.5, fp_line                  # well above chance (0.1)
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert all(plan_modules(r["plan"]) == ["stem", "body", "head"] for r in rows)
    assert all(r["top5"] is not None and r["top5"] >= r["accuracy"] for r in rows)   # the companion metric


NETWORK = '''
from torch import nn
from my_blocks import block

def build(num_classes: int) -> nn.Module:
    return nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, 32, 1), block(32, 32, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
'''
BLOCKS = '''
from torch import nn

def block(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
'''


@pytest.mark.slow
def test_a_users_network_builder_and_its_sibling_file_reach_the_workers_of_a_cluster(tmp_path, digits):
    config = _config(tmp_path, digits, "my_network:build",
                     # 0. and 6. hold the first and last layers, kept at full precision: each module
                     # still holds a quantized one
                     modules={"stem": ["0.", "1."], "body": ["2."], "head": ["3.", "6."]})
    (config.parent / "my_network.py").write_text(NETWORK)
    (config.parent / "my_blocks.py").write_text(BLOCKS)
    code, stdout, stderr = _driver(["-c", SCRIPT, str(config), str(tmp_path / "report.json")], tmp_path)
    assert code == 0, stderr[-3000:]
    workers = set(json.loads((tmp_path / "report.json").read_text())["workers"])
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    (experiment,) = (tmp_path / "out" / "ray").glob("digits-*")
    nodes = {report["node_id"] for t in experiment.glob("train_mqat_*") for report in read_reports(t)}
    assert nodes and nodes <= workers                                  # trials ran on the worker nodes
    assert "FP model: top-1" in stdout and "(trained now:" in stdout


DEEPER = '''
from torch import nn
from my_blocks import block

def build(num_classes: int) -> nn.Module:
    return nn.Sequential(block(3, 16, 2), block(16, 16, 1), block(16, 32, 2), block(32, 32, 1), block(32, 32, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
'''


@pytest.mark.slow
def test_a_search_at_group_granularity_gives_each_layer_group_its_bits_and_deploys_them(tmp_path, digits):
    """``space.granularity: group``: the automatic modules split into their blocks, a ``bits_*``
    parameter each; the trials' plans, packed models and ONNX files carry the groups' bits."""
    config = _config(tmp_path, digits, "my_network:build")
    data = yaml.safe_load(config.read_text())
    data["space"]["granularity"] = "group"
    config.write_text(yaml.safe_dump(data))
    (config.parent / "my_network.py").write_text(DEEPER)
    (config.parent / "my_blocks.py").write_text(BLOCKS)
    code, _, stderr = _driver(["-m", "search.cli", "search", "--config", str(config), "--quiet"], tmp_path)
    assert code == 0, stderr[-3000:]
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    units = [list(json.loads(r["plan"])["weight_bits"]) for r in rows]
    assert units[0] == units[1] and len(units[0]) > 3                    # more units than the 3 modules
    assert {u.split(".")[0] for u in units[0]} == {"stem", "body", "head"}
    for r in rows:
        assert r["onnx_bytes"] > 0 and r["model_bytes"] > 0
        assert r["test_accuracy_onnx"] is None or r["test_accuracy_onnx"] >= 0
