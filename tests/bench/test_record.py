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


def test_the_fp_model_is_kept_beside_the_table_and_used_from_then_on(tmp_path):
    paths = record.Paths(tmp_path)
    assert record.recording_config(tmp_path, tmp_path, paths).pretrain.checkpoint is None   # none yet: pretrain
    record.keep_fp_model(_prepared(torch.ones(2), None), paths)
    assert torch.load(paths.fp_checkpoint)["w"].tolist() == [1.0, 1.0]
    record.keep_fp_model(_prepared(torch.zeros(2), None), paths)            # kept once: never replaced
    assert torch.load(paths.fp_checkpoint)["w"].tolist() == [1.0, 1.0]
    assert record.recording_config(tmp_path, tmp_path, paths).pretrain.checkpoint == str(paths.fp_checkpoint)


def test_shared_prefixes_cut_the_main_sets_stage_trainings_and_every_job_shares_its_first_stage():
    main = record.todo([], replicates=(0,))
    assert len(main) == 448
    # 12 first stages (module x bits), 96 second, 384 third; 64 joint flows of one stage
    assert record.stage_trainings(main) == 12 + 96 + 384 + 64
    jobs = record.jobs(main)
    assert sorted(record.key(p) for job in jobs for _, p in job) == sorted(record.key(p) for _, p in main)
    for job in jobs:
        ordered = [p for _, p in job if p["order"] != record.JOINT]
        assert len({record.prefixes(p)[0] for p in ordered}) <= 1 and len({k for k, _ in job}) == 1
    assert sum(len(job) == 32 for job in jobs) == 12                     # 16 plans x 2 orders a first stage
    assert record.stage_trainings(record.todo([], replicates=(1,))) < 3 * record.REPEATS


def test_a_configuration_resumed_from_a_shared_prefix_trains_what_it_would_alone(tiny_task):
    """The sharing is exact: the row of a configuration recorded after another with the same first
    two stages (resumed from them) equals its row recorded alone, stage by stage."""
    from trainables.trainable import StageSettings

    fp_state = tiny_task.build_model().state_dict()
    stage = StageSettings(images_per_epoch=32, eval_images=16, calibration_batches=1, bn_batches=1)
    first = {"order": "fpn>head>backbone", "bits_backbone": 8, "bits_fpn": 2, "bits_head": 4}
    second = {**first, "bits_backbone": 3}
    shared = record.Recorder(tiny_task, fp_state, stage)
    rows = [shared.row(0, first), shared.row(0, second)]
    alone = record.Recorder(tiny_task, fp_state, stage).row(0, second)
    assert [r["status"] for r in rows] == ["finished", "finished"] and alone["status"] == "finished"
    assert rows[1]["stages_shared"] == 2 and alone["stages_shared"] == 0
    def untimed(row):
        return [{k: v for k, v in s.items() if k != "seconds"} for s in row["stages"]]

    assert untimed(rows[1]) == untimed(alone) and len(untimed(alone)) == 3
    for field in ("val_accuracy", "test_accuracy", "compression", "model_bytes"):
        assert rows[1][field] == alone[field], field
    assert rows[1]["stages"][:2] == rows[0]["stages"][:2]                 # the same two stages, once
    assert rows[0]["val_accuracy"] != rows[1]["val_accuracy"] or rows[0]["compression"] != rows[1]["compression"]


def test_a_job_commits_the_tables_files_and_nothing_else(tmp_path):
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "other.py").write_text("work in progress\n")
    paths = record.Paths(tmp_path / "tables")
    paths.folder.mkdir()
    paths.table.write_text('{"config": "a"}\n')
    paths.meta.write_text("{}\n")
    record.commit(paths, "two rows", log=lambda *a: None)
    assert git("log", "--format=%s") == "two rows\n"
    assert sorted(git("show", "--name-only", "--format=", "HEAD").split()) == ["tables/pose-grid.json",
                                                                               "tables/pose-grid.jsonl"]
    assert "other.py" in git("status", "--porcelain")                    # left as it was
