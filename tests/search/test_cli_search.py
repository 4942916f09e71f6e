"""`mqat search` on bad input: one clear line, exit status 2, no Ray started, nothing written."""
import os
import subprocess
import sys

import pytest
import yaml

from tests.integration.conftest import TINY


def _config(**sections):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


@pytest.mark.parametrize("config, extra, match", [
    (_config(searh={"num_samples": 2}), [], "unknown key searh; did you mean 'search'?"),
    (_config(search={"num_sample": 2}), [], "unknown key search.num_sample; did you mean 'num_samples'?"),
    (_config(space={"weight_bits": [2, 9]}), [], "space.weight_bits must be a list of bits"),
    (_config(space={"order": ["fpn", "head", "neck"]}), [], "['neck'], which are not modules"),
    (_config(space={"order": ["fpn", "fpn", "head", "backbone"]}), [], "repeats module(s) ['fpn']"),
    (_config(search={"targets": [4, 40]}), [], "40x is unreachable: the highest reachable"),
    (_config(pretrain={"checkpoint": "/nonexistent/fp.pt"}), [], "does not exist"),
    (_config(), ["--num-samples", "0"], "number of samples must be at least 1"),
    (_config(search={"resources": {"cpus_per_trial": 4096}}), [], "a trial asks for 4096 CPUs and 0 GPUs, but this machine has"),
    (_config(search={"resources": {"cpus_per_trial": 4096}}), ["--check"], "lower search.resources.cpus_per_trial"),
    (_config(search={"resources": {"gpus_per_trial": 64}}), ["--check"], "a trial asks for 1 CPUs and 64 GPUs"),
    (_config(search={"scheduler": {"name": "moasha"}}), [], "search.scheduler: MOASHA early stopping was retired"),
    (_config(search={"scheduler": {"name": "moasha"}}), ["--check"], "(measured, it never paid: docs/benchmarks.md); remove it"),
])
def test_bad_input(tmp_path, config, extra, match):
    _assert_refused(tmp_path, config, extra, match)


@pytest.mark.parametrize("faults", ["2:segfault", "two:nan", "2nan"])
def test_bad_fault_injection_is_refused_before_anything_runs(tmp_path, faults):
    _assert_refused(tmp_path, _config(), [], "MQAT_INJECT_FAULTS", {"MQAT_INJECT_FAULTS": faults})


@pytest.mark.parametrize("extra", [[], ["--check"]])
def test_an_unwritable_output_dir_is_refused_before_anything_runs(tmp_path, extra):
    _assert_refused(tmp_path, _config(), extra, "output_dir '/proc/forbidden' cannot be written",
                    output_dir="/proc/forbidden")


def _assert_refused(tmp_path, config, extra, match, environment=None, output_dir=None):
    config = {**config, "cache_dir": str(tmp_path / "cache"),
              "output_dir": output_dir or str(tmp_path / "out")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    ray_tmp = tmp_path / "ray"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), **(environment or {})}
    result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path),
                             "--quiet", *extra], check=False, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mqat: error:") and match in lines[0], lines
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    assert not ray_tmp.exists()
