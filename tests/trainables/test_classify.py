"""The classify task's parts: the image folder in its two layouts, the automatic module map,
torchvision's builders beside a CPU torch, and its config errors, each one line."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mqat import blocks
from trainables.classify.config import ClassifyConfig
from trainables.classify.images import read_folder
from trainables.classify.network import auto_modules, builder
from trainables.classify.task import ClassifyTask

TORCHVISION = "torchvision.models:"


def _write(folder, classes=("cat", "dog"), per_class=10, size=6):
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size, 3), 40 * c + i, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def test_one_folder_is_split_by_seed_into_disjoint_splits_that_cover_it(tmp_path):
    _write(tmp_path / "images", per_class=20)
    splits, classes = read_folder(tmp_path / "images", size=4, channels=3, val=0.25, test=0.25, seed=0,
                                  cache_dir=tmp_path / "cache")
    assert classes == ["cat", "dog"]
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [20, 10, 10]
    pixels = sorted(v for s in ("train", "val", "test") for v in splits[s].images[:, 0, 0, 0].tolist())
    assert pixels == sorted(list(range(20)) + list(range(40, 60)))        # every image once, in one split
    again, _ = read_folder(tmp_path / "images", size=4, channels=3, val=0.25, test=0.25, seed=0,
                           cache_dir=tmp_path / "cache")                   # from the cache: the same split
    assert torch.equal(again["test"].images, splits["test"].images)
    other, _ = read_folder(tmp_path / "images", size=4, channels=3, val=0.25, test=0.25, seed=1,
                           cache_dir=tmp_path / "cache")
    assert not torch.equal(other["test"].images, splits["test"].images)     # another seed, another split


def test_split_folders_are_read_as_they_are_and_a_missing_one_is_named(tmp_path):
    for split, count in (("train", 6), ("val", 3), ("test", 2)):
        _write(tmp_path / "data" / split, per_class=count)
    splits, _ = read_folder(tmp_path / "data", size=4, channels=1, val=0.1, test=0.1, seed=0, cache_dir=tmp_path)
    assert [len(splits[s].labels) for s in ("train", "val", "test")] == [12, 6, 4]
    assert splits["train"].images.shape[1:] == (1, 4, 4)
    (tmp_path / "partial" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"has \['train'\] but not \['val', 'test'\]"):
        read_folder(tmp_path / "partial", size=4, channels=3, val=0.1, test=0.1, seed=0, cache_dir=tmp_path)


def test_the_auto_map_cuts_the_blocks_into_three_modules_of_near_equal_weight():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3)),
                          nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3), nn.Flatten(), nn.Linear(16, 4))
    found = blocks(model)
    assert [name for name, _ in found] == ["0", "1", "2", "3", "5"]          # the Flatten holds no weights
    modules = auto_modules(model)
    assert list(modules) == ["stem", "body", "head"]
    assert sum(len(p) for p in modules.values()) == 5                        # every block in one module
    wrapped = nn.Sequential(nn.Sequential(*[nn.Conv2d(8, 8, 3) for _ in range(6)]), nn.Linear(8, 2))
    assert [n for n, _ in blocks(wrapped)] == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "1"]  # one big wrapper opened


NETWORKS = [("torchvision.models:resnet18", {}), ("torchvision.models:mobilenet_v3_small", {}),
            ("timm:create_model", {"model_name": "resnet10t"}), ("timm:create_model", {"model_name": "convnext_atto"})]


@pytest.mark.parametrize("path, args", NETWORKS, ids=["resnet18", "mobilenet_v3_small", "timm-resnet10t",
                                                      "timm-convnext_atto"])
def test_every_module_of_the_auto_split_holds_a_real_share_of_the_quantized_weights(path, args):
    """The split counts only the weights that will be quantized (the first and last layers stay at
    full precision) and opens a dominant block down to single layers: resnet10t's head was its
    classifier alone (0% quantized) before, its last stage 75% of one module."""
    import mqat

    model = builder(path)(**args, num_classes=10)
    kept = mqat.ModuleMap.first_and_last(model)
    module_map = mqat.ModuleMap(auto_modules(model, kept=kept), fp_first_last=True)
    quantized = {m: sum(layer.weight.numel() for name, layer in layers if name not in kept)
                 for m, layers in module_map.layers(model).items()}       # validates: every layer in one module
    shares = {m: n / sum(quantized.values()) for m, n in quantized.items()}
    assert min(shares.values()) >= 0.10, shares


def test_a_block_holding_most_weights_is_opened_down_to_its_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3),
                          nn.Sequential(nn.Conv2d(8, 64, 3), nn.Conv2d(64, 64, 3)), nn.Linear(64, 4))
    kept = {"0", "3"}
    assert [n for n, _ in blocks(model, kept=kept)] == ["0", "1", "2.0", "2.1", "3"]
    modules = auto_modules(model, kept=kept)
    assert modules == {"stem": ["0.", "1."], "body": ["2.0."], "head": ["2.1.", "3."]}


def _plain_import_fails() -> bool:
    """Whether ``import torchvision`` fails in a fresh process as it does beside a CPU torch."""
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True, check=False)
    return "torchvision::nms does not exist" in probe.stderr


def test_torchvision_builders_work_beside_this_torch_and_the_map_covers_every_layer():
    import mqat

    fresh = "torchvision" not in sys.modules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build = builder(TORCHVISION + "resnet18")
    warned = any("compiled operators do not load" in str(w.message) for w in caught)
    assert warned == (fresh and _plain_import_fails())       # said exactly when the operators are missing
    model = build(num_classes=10)
    module_map = mqat.ModuleMap(auto_modules(model))
    module_map.validate(model)                                # no layer left out, none twice
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_torchvision_operator_without_its_library_fails_with_torchvisions_own_message():
    script = ("from trainables.classify.torchvision_compat import import_torchvision\n"
              "import torch; tv = import_torchvision()\n"
              "tv.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)\n")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, check=False)
    if _plain_import_fails():
        assert result.returncode == 1 and "Couldn't load custom C++ ops" in result.stderr
    else:
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("keys", "message"), [
    ({"model": ""}, r"task.model is required"),
    ({"model": "resnet18"}, r"task.model must be 'module:callable'"),
    ({"data": "/nonexistent/folder"}, r"task.data: /nonexistent/folder is not a folder"),
    ({"modules": "automatic"}, r"task.modules must be 'auto' or a mapping"),
    ({"channels": 2}, r"task.channels must be 1 or 3"),
])
def test_bad_classify_settings_are_one_line(tmp_path, keys, message):
    _write(tmp_path / "images")
    settings = {"model": TORCHVISION + "resnet18", "data": str(tmp_path / "images"), **keys}
    with pytest.raises(ValueError, match=message):
        ClassifyTask(ClassifyConfig(**settings), cache_dir=tmp_path, device="cpu")


def test_a_network_that_is_no_module_is_refused(tmp_path):
    _write(tmp_path / "images")
    config = ClassifyConfig(model="builtins:dict", data=str(tmp_path / "images"))
    with pytest.raises(ValueError, match="returned dict, not a torch module"):
        ClassifyTask.modules_for(config)


def test_an_unreadable_image_is_one_line_and_exit_2_with_nothing_cached(tmp_path):
    import yaml

    _write(tmp_path / "images")
    (tmp_path / "images" / "cat" / "broken.png").write_bytes(b"not a png")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "broken", "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
        "task": {"name": "classify", "model": TORCHVISION + "resnet18", "model_args": {"num_classes": 2},
                 "data": str(tmp_path / "images"), "image_size": 8},
        "search": {"targets": [4]}}))
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "search.cli", "plan", "--config", str(config),
                             "--quiet"], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("mqat: error: task.data: cannot read ") and "broken.png" in line
    assert not list((tmp_path / "cache").rglob("*.pt"))       # no half-read split cached


def _check(tmp_path, model: str, model_args: dict, **env) -> tuple[int, str, float]:
    """``mqat search --check`` on a config naming ``model``; its exit status, stderr and seconds."""
    import os
    import time

    import yaml

    _write(tmp_path / "images", per_class=6)
    config = {"name": "bad", "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
              "task": {"name": "classify", "model": model, "model_args": model_args, "data": str(tmp_path / "images"),
                       "image_size": 8}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "search.cli", "search", "--config",
                           str(tmp_path / "c.yaml"), "--check"], capture_output=True, text=True, check=False,
                          env={**os.environ, **env})
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()   # nothing written
    return done.returncode, done.stderr, time.monotonic() - start


def test_a_model_argument_the_builder_does_not_take_is_one_line_naming_it(tmp_path):
    code, stderr, _ = _check(tmp_path, TORCHVISION + "resnet18", {"num_class": 10})
    assert code == 2 and stderr.strip().splitlines() == [
        ("mqat: error: task.model_args do not fit torchvision.models:resnet18: TypeError: "
         "ResNet.__init__() got an unexpected keyword argument 'num_class'")]


@pytest.mark.parametrize("model, args", [(TORCHVISION + "resnet18", {"weights": "DEFAULT"}),
                                         ("timm:create_model", {"model_name": "resnet10t", "pretrained": True})],
                         ids=["torchvision", "timm"])
def test_pretrained_weights_that_cannot_be_fetched_fail_in_seconds_saying_how_to_use_a_local_file(tmp_path, model,
                                                                                                  args):
    """No network (a proxy that refuses every connection) and empty caches: the Hugging Face
    hub's client retried for about 50 s before (timm); now one line within seconds, exit 2."""
    refused = "http://127.0.0.1:9"
    code, stderr, seconds = _check(tmp_path, model, args, HTTPS_PROXY=refused, HTTP_PROXY=refused,
                                   https_proxy=refused, http_proxy=refused, HF_HOME=str(tmp_path / "hf"),
                                   TORCH_HOME=str(tmp_path / "torch"))
    errors = [line for line in stderr.splitlines() if line.startswith("mqat: error:")]
    assert code == 2 and len(errors) == 1, stderr
    assert "could not fetch its pretrained weights" in errors[0] and "task.weights" in errors[0]
    assert seconds < 20
