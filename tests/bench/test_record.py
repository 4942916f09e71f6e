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


def test_a_table_made_with_another_fp_model_is_refused():
    prepared = SimpleNamespace(fp_state={"w": torch.ones(2)}, fp_metrics={"accuracy": 0.3})
    meta = record._check_meta(prepared, {})
    assert record._check_meta(prepared, meta)["fp"] == meta["fp"]          # the same model: accepted
    other = SimpleNamespace(fp_state={"w": torch.zeros(2)}, fp_metrics={"accuracy": 0.3})
    with pytest.raises(record.TableMismatch, match="is not the table's"):
        record._check_meta(other, meta)
