"""Cache files are checked against the size and hash recorded at write: a damaged rendered set is
rendered again, a damaged FP checkpoint is refused with one line naming what to delete."""
from __future__ import annotations

import json

import pytest
import torch

from trainables import cachefile
from trainables.pose.dataset import RenderSpec, cached_render
from trainables.pretrain import PretrainConfig, pretrain


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_record_catches_truncation_and_changed_bytes(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 100)
    assert cachefile.problem(path) == "it has no size and hash record"
    cachefile.write_record(path)
    assert json.loads(cachefile.record_path(path).read_text())["size"] == 25600
    assert cachefile.problem(path) is None
    _flip_last_byte(path)
    assert cachefile.problem(path) == "its SHA-256 differs from the one recorded at write"
    assert cachefile.problem(path, full=False) is None  # a trial compares sizes only
    path.write_bytes(path.read_bytes()[:1000])
    assert cachefile.problem(path, full=False) == "it holds 1000 bytes, but 25600 were written"


def test_a_damaged_rendered_set_is_rendered_again(tmp_path):
    spec = RenderSpec(8, seed=0, size=32)
    first = cached_render(spec, tmp_path, progress=False)
    images, R = first.images.clone(), first.R.clone()  # copies: ``first`` maps the file truncated below
    path = tmp_path / "rendered" / f"{spec.key()}.pt"
    assert cachefile.problem(path) is None
    path.write_bytes(path.read_bytes()[:1000])  # as a disk-full copy leaves it
    with pytest.warns(RuntimeWarning, match="damaged .*holds 1000 bytes.*rendering it again"):
        again = cached_render(spec, tmp_path, progress=False)
    assert torch.equal(images, again.images) and torch.equal(R, again.R)
    assert cachefile.problem(path) is None


def test_a_damaged_fp_checkpoint_is_refused(tiny_task, tmp_path):
    config = PretrainConfig(epochs=1, lr=1e-3)
    first = pretrain(tiny_task, config, cache_dir=tmp_path, progress=False)
    assert pretrain(tiny_task, config, cache_dir=tmp_path, progress=False).cached
    _flip_last_byte(first.checkpoint)
    with pytest.raises(ValueError, match=r"^the cached FP checkpoint .*model.pt is damaged \(its SHA-256 "
                                         r"differs from the one recorded at write\): delete .* to pretrain again$"):
        pretrain(tiny_task, config, cache_dir=tmp_path, progress=False)
