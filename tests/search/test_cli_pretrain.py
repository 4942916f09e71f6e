"""`mqat pretrain`: bad input ends in one line and exit status 2, with nothing written."""
import subprocess
import sys

import pytest
import yaml

TINY = {"name": "tiny", "task": {"name": "pose", "train_images": 64, "val_images": 16, "test_images": 16,
                                 "image_size": 64, "widths": [8, 16, 32, 64], "fpn_channels": 16, "keypoints": 6,
                                 "batch_size": 16},
        "pretrain": {"epochs": 1}}


def _run(tmp_path, config, *extra):
    path = tmp_path / "config.yaml"
    config = {**config, "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "search.cli", "pretrain", "--config", str(path),
                           "--quiet", *extra], check=False, capture_output=True, text=True, timeout=600)


def _task(**changes):
    return {**TINY, "task": {**TINY["task"], **changes}}


@pytest.mark.parametrize("config, match", [
    (_task(name="segmentation"), "unknown task 'segmentation'"),
    (_task(source="bop", bop_path="/nonexistent/bop"), "does not exist"),
    ({**TINY, "pretrain": {"checkpoint": "/nonexistent/model.pt"}}, "does not exist"),
    ({**TINY, "bogus": 1}, "unknown key bogus"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, config, match):
    result = _run(tmp_path, config)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and lines[0].startswith("mqat: error:")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_unreadable_checkpoint_exits_2(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = _run(tmp_path, {**TINY, "pretrain": {"checkpoint": str(bad)}})
    assert result.returncode == 2
    assert "cannot read checkpoint" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bop_object_not_in_dataset_exits_2(tmp_path):
    from tests.trainables.bop_fixture import write_bop
    root = tmp_path / "bop"
    root.mkdir()
    write_bop(root, images=2)
    result = _run(tmp_path, _task(source="bop", bop_path=str(root), bop_object_id=9))
    assert result.returncode == 2 and "object id 9 is not in the BOP dataset" in result.stderr


def test_pretrain_runs_and_reports(tmp_path):
    result = _run(tmp_path, TINY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FP model: ADD-0.1d") and "baseline (a model that learned nothing)" in result.stdout
    again = _run(tmp_path, TINY)
    assert again.returncode == 0 and "(cached: trained before with these settings and code)" in again.stdout


def test_a_damaged_cached_checkpoint_is_refused_in_one_line(tmp_path):
    assert _run(tmp_path, TINY).returncode == 0
    (checkpoint,) = (tmp_path / "cache" / "pretrain").glob("*/model.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    again = _run(tmp_path, TINY)
    search = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config",
                             str(tmp_path / "config.yaml"), "--check", "--quiet"],
                            check=False, capture_output=True, text=True, timeout=600)
    for result in (again, search):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "model.pt is damaged (it holds 1000 bytes" in lines[0], lines
    assert not (tmp_path / "out").exists()
