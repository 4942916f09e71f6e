"""The recording's bookkeeping: the grid, what a table still lacks, and a foreign FP model refused."""
from types import SimpleNamespace

import pytest
import torch

from bench import record


def test_the_grid_and_what_a_table_lacks():
    grid = record.grid()
    assert len(grid) == 448 and len({record.key(p) for p in grid}) == 448
    assert sum(p["order"] == "uniform" for p in grid) == 64
    done = [{"replicate": 0, "config": record.key(p)} for p in grid[:10]]
    left = record.todo(done)
    assert len(left) == 528 - 10 and all((k, record.key(p)) != (0, record.key(grid[0])) for k, p in left)
    assert record.repeat_set() == record.repeat_set()                      # the same every session


def _prepared(weights, images):
    """What _check_meta reads of a prepared search: the FP weights, its scores, the task's data."""
    data = SimpleNamespace(images=images)
    task = SimpleNamespace(data=lambda split: data)
    return SimpleNamespace(fp_state={"w": weights}, fp_metrics={"accuracy": 0.3}, checked=SimpleNamespace(task=task))


def test_a_table_made_with_another_fp_model_or_other_images_is_refused():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    prepared = _prepared(torch.ones(2), images)
    meta = record._check_meta(prepared, {})
    assert set(meta["data"]) == {"train", "val", "test"}
    assert record._check_meta(prepared, meta)["fp"] == meta["fp"]          # the same model: accepted
    # a run from the kept checkpoint has no FP scores of its own: the table's stay
    again = _prepared(torch.ones(2), images)
    again.fp_metrics = {"source": "checkpoint"}
    assert record._check_meta(again, meta)["fp"]["val_accuracy"] == 0.3
    with pytest.raises(record.TableMismatch, match="is not the table's"):
        record._check_meta(_prepared(torch.zeros(2), images), meta)
    with pytest.raises(record.TableMismatch, match="rendered other images"):
        record._check_meta(_prepared(torch.ones(2), images + 1), meta)


def test_the_fp_model_is_kept_beside_the_table_and_used_from_then_on(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "FP_CHECKPOINT", tmp_path / "fp.pt")
    assert record.recording_config(tmp_path, tmp_path).pretrain.checkpoint is None   # none yet: pretrain
    record.keep_fp_model(_prepared(torch.ones(2), None))
    assert torch.load(tmp_path / "fp.pt")["w"].tolist() == [1.0, 1.0]
    record.keep_fp_model(_prepared(torch.zeros(2), None))                  # kept once: never replaced
    assert torch.load(tmp_path / "fp.pt")["w"].tolist() == [1.0, 1.0]
    assert record.recording_config(tmp_path, tmp_path).pretrain.checkpoint == str(tmp_path / "fp.pt")
