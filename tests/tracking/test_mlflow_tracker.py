"""The MLflow tracker against a real SQLite store, without Ray (no trial runs: stand-ins)."""
import json
import multiprocessing as mp
import pickle
from types import SimpleNamespace

import pytest

pytest.importorskip("mlflow")

from tracking.live_table import LiveTable
from tracking.mlflow_tracker import EXPERIMENT_KIND, VIEW_KEY, MLflowTracker, default_uri


def _tracker(tmp, search: str) -> MLflowTracker:
    return MLflowTracker(uri=default_uri(tmp), experiment="shared", search_path=f"/searches/{search}",
                         table=LiveTable(tmp), params={"method": "mqat"}, artifacts={})


def _open_parent(tmp, search, barrier):
    barrier.wait()   # every process opens the new store at the same moment
    return _tracker(tmp, search).parent()


def test_searches_started_together_on_one_new_store_each_get_their_parent(tmp_path):
    ctx = mp.get_context("spawn")
    searches = [f"s{i}" for i in range(4)]
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(searches))
        with ctx.Pool(len(searches)) as pool:
            parents = pool.starmap(_open_parent, [(tmp_path, s, barrier) for s in searches])
    assert len(set(parents)) == len(searches)
    client = _tracker(tmp_path, "s0").client
    experiments = [e for e in client.search_experiments() if e.name == "shared"]
    assert len(experiments) == 1
    for search, parent in zip(searches, parents):
        assert client.get_run(parent).data.tags["search_path"] == f"/searches/{search}"


def test_the_experiment_opens_on_the_runs_table_with_accuracy_and_compression(tmp_path):
    tracker = _tracker(tmp_path, "s0")
    trial = SimpleNamespace(trial_id="t1", config={"bits_fpn": 4})
    tracker.setup()
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, {"stage": 3, "accuracy": 0.5, "compression": 8.0})
    client = tracker.client
    experiment = client.get_experiment_by_name("shared")
    # MLflow 3's UI reads this tag: without it an experiment opens on its GenAI traces view
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development" == EXPERIMENT_KIND
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{VIEW_KEY}"])
    assert {"metrics.`accuracy`", "metrics.`compression`"} <= set(view["selectedColumns"])
    child = client.get_run(tracker.child(trial))
    assert child.data.tags["mlflow.parentRunId"] == tracker.parent()
    assert child.data.metrics == {"accuracy": 0.5, "compression": 8.0}
    note = client.get_run(tracker.parent()).data.tags["mlflow.note.content"]
    # the UI's model-training view, not its GenAI one, and the saved columns (checked in a browser:
    # docs/mlflow-ui.png)
    page = f"#/experiments/{experiment.experiment_id}?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    assert page in note and tracker.ui_link().endswith(f"http://127.0.0.1:5000/{page}")
    assert tracker.ui_link().startswith(f"mlflow ui --backend-store-uri {tracker.uri} ")


def _trial(trial_id, accuracy, compression):
    result = {"final": True, "stage": 4, "accuracy": accuracy, "compression": compression}
    return SimpleNamespace(trial_id=trial_id, config={"bits_fpn": 4, "order": "fpn>head"}, last_result=result,
                           local_path=None, checkpoint=None, get_error=lambda: None)


def test_a_resumed_tracker_continues_the_front_tags_and_hypervolume(tmp_path):
    from tracking.table import read_table

    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)   # what Tune keeps of the callback (tuner.pkl, at the start)
    started.setup()
    for trial in (_trial("t1", 0.5, 4.0), _trial("t2", 0.3, 8.0)):
        started.on_trial_start(0, [], trial)
        started.on_trial_complete(0, [], trial)

    resumed = pickle.loads(pickled)   # --resume: the callback as pickled, then set up again
    resumed.setup()
    better = _trial("t3", 0.6, 4.5)  # dominates t1
    resumed.on_trial_start(0, [], better)
    resumed.on_trial_complete(0, [], better)

    rows = read_table(tmp_path / "trials.parquet")
    assert {r["trial_id"]: r["pareto"] for r in rows} == {"t1": False, "t2": True, "t3": True}
    client, parent = resumed.client, resumed.parent()
    children = client.search_runs([client.get_experiment_by_name("shared").experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {c.data.tags["trial_id"]: c.data.tags["pareto"] for c in children} == {
        "t1": "false", "t2": "true", "t3": "true"}
    history = client.get_metric_history(parent, "hypervolume")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == sorted(m.value for m in history)


def test_a_trial_the_resumed_search_forgot_leaves_no_child(tmp_path):
    """A trial started between Tune's last snapshot and a killed driver is run again under a new
    id after --resume: its orphan child run goes, so each trial keeps exactly one child."""
    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    kept, lost = _trial("t1", 0.5, 4.0), _trial("t2", 0.3, 8.0)
    for trial in (kept, lost):
        tracker.on_trial_start(0, [], trial)
    tracker.on_trial_complete(0, [], kept)
    tracker.on_experiment_end([kept])
    client, parent = tracker.client, tracker.parent()
    children = client.search_runs([client.get_experiment_by_name("shared").experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert [c.data.tags["trial_id"] for c in children] == ["t1"]


def test_a_stage_run_twice_is_recorded_once_also_by_a_resumed_tracker(tmp_path):
    """A worker that dies between its report and Tune holding the checkpoint reruns the stage;
    so does a trial resumed from a driver snapshot older than its last report."""
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    trial = SimpleNamespace(trial_id="t1", config={"bits_fpn": 4})
    started.on_trial_start(0, [], trial)
    for iteration, (stage, accuracy) in enumerate([(0, 0.30), (1, 0.35), (1, 0.36)], start=1):
        started.on_trial_result(0, [], trial, {"stage": stage, "accuracy": accuracy, "training_iteration": iteration})
    resumed = pickle.loads(pickled)
    resumed.setup()
    resumed.on_trial_start(0, [], trial)
    for iteration, (stage, accuracy) in enumerate([(1, 0.37), (2, 0.40)], start=1):
        resumed.on_trial_result(0, [], trial, {"stage": stage, "accuracy": accuracy, "training_iteration": iteration})
    history = resumed.client.get_metric_history(resumed.child(trial), "accuracy")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.30), (1, 0.35), (2, 0.40)]


def test_a_driver_killed_between_a_trials_end_and_its_saved_table_keeps_one_hypervolume_per_trial(tmp_path):
    from tracking.table import read_table

    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    trials = [_trial(f"t{i}", 0.1 * i, 2.0 * i) for i in range(1, 5)]
    for trial in trials:
        trial.status = "RUNNING"
    for trial in trials[:2]:
        started.on_trial_start(0, [], trial)
        started.on_trial_complete(0, trials, trial)
        trial.status = "TERMINATED"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("the driver dies here")
    started.client.log_artifact = killed           # t3's end: hypervolume logged, the table never saved
    started.on_trial_start(0, [], trials[2])
    with pytest.raises(KeyboardInterrupt):
        started.on_trial_complete(0, trials, trials[2])
    trials[2].status = "TERMINATED"
    (tmp_path / "trials.parquet").unlink()          # nor its local copy: only MLflow's is left

    resumed = pickle.loads(pickled)
    resumed.setup()                                  # restores t1 and t2 only
    resumed.on_trial_start(0, [], trials[3])
    resumed.on_trial_complete(0, trials, trials[3])  # Tune knows t3 ended: it is not run again
    history = resumed.client.get_metric_history(resumed.parent(), "hypervolume")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert sorted(r["trial_id"] for r in read_table(tmp_path / "trials.parquet")) == ["t1", "t2", "t3", "t4"]
    resumed.on_trial_complete(0, trials, trials[2])  # or it is: nothing is logged twice
    assert sorted(m.step for m in resumed.client.get_metric_history(resumed.parent(), "hypervolume")) == [1, 2, 3, 4]


def test_a_trial_whose_end_never_reached_mlflow_keeps_its_hypervolume_step(tmp_path):
    """A driver killed while a trial's end waited for the writer: the resumed table fills the
    trial in beside the next one to end (two rows at once), and the parent's history gets both
    steps, in order of time and step, the volume never falling."""
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    first, second = _trial("t1", 0.3, 8.0), _trial("t2", 0.6, 4.5)
    started.on_trial_start(0, [], first)            # ... and the driver dies before its end is written
    first.status, second.status = "TERMINATED", "RUNNING"

    resumed = pickle.loads(pickled)
    resumed.setup()
    resumed.on_trial_start(0, [], second)
    resumed.on_trial_complete(0, [first, second], second)
    history = sorted(resumed.client.get_metric_history(resumed.parent(), "hypervolume"), key=lambda m: m.timestamp)
    assert [m.step for m in history] == [1, 2]
    assert 0 < history[0].value < history[1].value
    finished = resumed.client.get_metric_history(resumed.parent(), "trials_finished")
    assert sorted((m.step, m.value) for m in finished) == [(1, 1.0), (2, 2.0)]


def _run_to_the_end(tracker, trials):
    """Every trial started (all running at once), then each completed in turn."""
    for trial in trials:
        trial.status = "RUNNING"
    for trial in trials:
        tracker.on_trial_start(0, trials, trial)
        tracker.on_trial_complete(0, trials, trial)
        trial.status = "TERMINATED"


def _children(tracker):
    client = tracker.client
    return client.search_runs([client.get_experiment_by_name("shared").experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{tracker.parent()}'")


def test_stages_a_killed_driver_never_wrote_reach_the_child_at_the_trials_end(tmp_path):
    """Stage reports still waiting for the writer die with the driver; the resumed trial goes on
    from its checkpoint and never reports them again: its end writes them from result.json."""
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    stages = [{"stage": k, "accuracy": 0.1 + 0.1 * k, "compression": 4.0, "training_iteration": k + 1} for k in range(4)]
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in stages))
    trial = _trial("t1", 0.4, 4.0)
    trial.local_path, trial.status = str(tmp_path / "trial"), "TERMINATED"
    started.on_trial_start(0, [], trial)
    started.on_trial_result(0, [], trial, stages[0])   # stages 1 and 2 were lost with the driver
    resumed = pickle.loads(pickled)
    resumed.setup()
    resumed.on_trial_result(0, [], trial, stages[3])   # the resumed trial's one report
    resumed.on_trial_complete(0, [trial], trial)
    history = resumed.client.get_metric_history(resumed.child(trial), "accuracy")
    assert sorted((m.step, round(m.value, 6)) for m in history) == [(0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)]


def test_a_trial_that_ended_under_an_earlier_driver_gets_its_stages_from_the_storage_copy(tmp_path):
    """After ``--resume`` a trial's staging directory (``local_path``) is a new session's, empty:
    the stages an earlier driver never wrote to MLflow are read from the experiment's storage
    (``trial.path``), as the chaos soak found (a trial's last stage missing from its run)."""
    from pyarrow.fs import LocalFileSystem

    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    stages = [{"stage": k, "accuracy": 0.1 + 0.1 * k, "compression": 4.0, "training_iteration": k + 1} for k in range(4)]
    (tmp_path / "storage" / "trial").mkdir(parents=True)
    (tmp_path / "storage" / "trial" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in stages))
    trial = _trial("t1", 0.4, 4.0)
    trial.status = "RUNNING"
    started.on_trial_start(0, [], trial)
    for stage in stages[:3]:                           # stage 3 and the end were lost with the driver
        started.on_trial_result(0, [], trial, stage)
    trial.status, trial.local_path = "TERMINATED", str(tmp_path / "session-2" / "trial")
    trial.path, trial.storage = str(tmp_path / "storage" / "trial"), SimpleNamespace(storage_filesystem=LocalFileSystem())
    resumed = pickle.loads(pickled)
    resumed.setup()
    resumed.on_experiment_end([trial])                 # the trial ended before the kill: no event now
    history = resumed.client.get_metric_history(resumed.child(trial), "accuracy")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]

def test_a_trial_an_interrupted_search_ended_short_gets_its_later_stages_from_the_backfill(tmp_path):
    """Ctrl-C: Tune marks the running trial ended and calls the experiment's end, which ends its
    run; after ``--resume`` the trial finishes, but that driver is killed with its writes queued.
    The last driver's end must still write the stages: the short end does not count as the
    trial's (the 20-round soak found a trial holding stages [0, 1] of [0..4])."""
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    stages = [{"stage": k, "accuracy": 0.1 + 0.1 * k, "compression": 4.0, "training_iteration": k + 1} for k in range(4)]
    (tmp_path / "trial").mkdir()
    trial = _trial("t1", 0.4, 4.0)
    trial.local_path, trial.status = str(tmp_path / "trial"), "RUNNING"
    started.on_trial_start(0, [], trial)
    for stage in stages[:2]:
        started.on_trial_result(0, [], trial, stage)
    trial.last_result, trial.status = stages[1], "TERMINATED"   # stopped by Tune at the interrupt
    started.on_experiment_end([trial])
    (tmp_path / "trial" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in stages))
    trial.last_result = {**stages[3], "final": True}          # finished under the next driver,
    last = pickle.loads(pickled)                              # whose writes were lost with it
    last.setup()
    last.on_experiment_end([trial])
    (child,) = _children(last)
    steps = sorted(m.step for m in last.client.get_metric_history(child.info.run_id, "accuracy"))
    assert steps == [0, 1, 2, 3] and child.info.status == "FINISHED"
    assert child.data.tags["unfinished"] == "false"


def test_a_driver_killed_before_a_trials_end_was_whole_leaves_its_run_running_for_the_backfill(tmp_path):
    """A run is ended last: killed while its front model was uploading, the trial's run stays
    RUNNING, and the resumed search's end writes the end again, model included."""
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    trial = _trial("t1", 0.4, 4.0)
    trial.status = "RUNNING"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("the driver dies here")
    started._log_model = killed
    started.on_trial_start(0, [], trial)
    with pytest.raises(KeyboardInterrupt):
        started.on_trial_complete(0, [trial], trial)
    trial.status = "TERMINATED"
    assert [c.info.status for c in _children(started)] == ["RUNNING"]
    resumed = pickle.loads(pickled)
    resumed.setup()
    logged = []
    resumed._log_model = logged.append
    resumed.on_experiment_end([trial])
    assert [c.info.status for c in _children(resumed)] == ["FINISHED"] and logged == [trial]


def test_a_pareto_tag_lost_with_a_killed_driver_is_set_at_the_search_end(tmp_path):
    started = _tracker(tmp_path, "s0")
    pickled = pickle.dumps(started)
    started.setup()
    trials = [_trial("t1", 0.5, 4.0), _trial("t2", 0.3, 8.0)]
    _run_to_the_end(started, trials)
    started.client.set_tag(started.child(trials[1]), "pareto", "false")  # as if its update had been lost
    resumed = pickle.loads(pickled)
    resumed.setup()
    resumed.on_experiment_end(trials)                                    # no trial ends in this driver
    assert {c.data.tags["trial_id"]: c.data.tags["pareto"] for c in _children(resumed)} == {"t1": "true", "t2": "true"}


def test_a_child_whose_first_write_failed_is_one_run_when_the_hook_is_tried_again(tmp_path):
    """The writer thread tries a hook again while the server is unreachable: the run it had
    made is the trial's, not a second one."""
    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    trial = _trial("t1", 0.5, 4.0)
    log_batch, failures = tracker.client.log_batch, []

    def unreachable_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise ConnectionError("the server is restarting")
        return log_batch(*args, **kwargs)
    tracker.client.log_batch = unreachable_once
    with pytest.raises(ConnectionError):
        tracker.on_trial_start(0, [], trial)
    tracker.on_trial_start(0, [], trial)                                   # the retry
    assert len(_children(tracker)) == 1


@pytest.mark.parametrize("answer", ["lost, then sent again", "lost, the hook tried again"])
def test_a_child_the_server_made_twice_is_one_run(tmp_path, answer):
    """The server killed after it wrote a child run but before it answered: MLflow's HTTP retries
    send ``create_run`` again, or the writer thread tries the hook again once they give up; either
    way the server made the run twice, and the trial keeps one child, the one it is logged to."""
    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    trial = _trial("t1", 0.5, 4.0)
    create_run, calls = tracker.client.create_run, []

    def answer_lost_once(*args, **kwargs):
        calls.append(create_run(*args, **kwargs))          # written, its answer never arrives
        if len(calls) > 1:
            return calls[-1]
        if answer == "lost, the hook tried again":
            raise ConnectionError("the server went away")
        return create_run(*args, **kwargs)                  # the same request, sent again
    tracker.client.create_run = answer_lost_once
    if answer == "lost, the hook tried again":
        with pytest.raises(ConnectionError):
            tracker.on_trial_start(0, [], trial)
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_complete(0, [], trial)
    (child,) = _children(tracker)
    assert child.info.run_id == tracker.child(trial) and child.info.status == "FINISHED"


def test_a_resumed_tracker_keeps_one_child_of_a_trial_a_killed_driver_left_two_of(tmp_path):
    """A driver killed between a doubled ``create_run`` and its clean-up leaves two runs of one
    trial; the resumed tracker keeps the newer, the one whose id came back and was written to."""
    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    client, parent = tracker.client, tracker.parent()
    experiment = client.get_experiment_by_name("shared").experiment_id
    tags = {"mlflow.parentRunId": parent, "trial_id": "t1"}
    older = client.create_run(experiment, run_name="t1", tags=tags, start_time=1_000)
    newer = client.create_run(experiment, run_name="t1", tags=tags, start_time=2_000)
    resumed = _tracker(tmp_path, "s0")
    resumed.setup()
    assert [c.info.run_id for c in _children(resumed)] == [newer.info.run_id]
    assert resumed.child(_trial("t1", 0.5, 4.0)) == newer.info.run_id
    assert client.get_run(older.info.run_id).info.lifecycle_stage == "deleted"


def test_registered_name_is_the_search_name_of_a_path_or_uri():
    from tracking.mlflow_tracker import registered_name

    assert registered_name("/runs/ray/quickstart-20261130-224512") == "quickstart-20261130-224512"
    assert registered_name("s3://bucket/ray/tiny-20261130-223805?endpoint_override=127.0.0.1:49887&scheme=http") \
        == "tiny-20261130-223805"


def test_the_final_table_sets_the_tags_and_models_the_live_rows_got_wrong(tmp_path):
    """The trials' ends were logged from the live rows, where a row Tune does not hold (a trial
    it forgot at a resume) dominated t2; the final table, from Tune's results, has t2 on the
    front: after the search t2 is tagged so, its model logged, and it is registered."""
    from ray.tune import Checkpoint

    from tracking.artifacts import MODEL_FILE, ONNX_FILE

    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    trials = [_trial("t1", 0.5, 4.0), _trial("t2", 0.3, 8.0), _trial("t3", 0.4, 9.0)]
    _run_to_the_end(tracker, trials)
    final = [dict(tracker.table.rows[t]) for t in ("t1", "t2")]   # Tune's results: no t3
    for r in final:
        r["pareto"] = True
    directory = tmp_path / "checkpoint_t2"
    directory.mkdir()
    (directory / MODEL_FILE).write_bytes(b"packed")
    (directory / ONNX_FILE).write_bytes(_tiny_onnx())
    tracker.log_final(final, {"t1": None, "t2": Checkpoint.from_directory(str(directory))})
    tags = {c.data.tags["trial_id"]: c.data.tags["pareto"] for c in _children(tracker)}
    assert tags == {"t1": "true", "t2": "true", "t3": "true"}   # t3 is not in the final table: left as it was
    name = tracker.register_front(final)
    versions = tracker.client.search_model_versions(f"name = '{name}'")
    assert [v.tags["trial_id"] for v in versions] == ["t2"]


def test_a_front_model_whose_onnx_a_killed_driver_never_logged_is_logged_and_registered_at_the_end(tmp_path):
    """A driver killed between a front model's packed file and its ONNX model (the chaos soak's
    20 rounds left one so) leaves the run with ``model/`` but no ``onnx`` tag, which is what the
    registry reads: after the search the ONNX model is logged and the trial registered."""
    from ray.tune import Checkpoint

    from tracking.artifacts import MODEL_FILE, ONNX_FILE

    tracker = _tracker(tmp_path, "s0")
    tracker.setup()
    trial = _trial("t1", 0.5, 4.0)
    _run_to_the_end(tracker, [trial])
    directory = tmp_path / "checkpoint_t1"
    directory.mkdir()
    (directory / MODEL_FILE).write_bytes(b"packed")
    (directory / ONNX_FILE).write_bytes(_tiny_onnx())
    tracker.client.log_artifact(tracker.child(trial), str(directory / MODEL_FILE), "model")  # then killed
    final = [dict(tracker.table.rows["t1"], pareto=True)]
    tracker.log_final(final, {"t1": Checkpoint.from_directory(str(directory))})
    name = tracker.register_front(final)
    assert name is not None
    assert [v.tags["trial_id"] for v in tracker.client.search_model_versions(f"name = '{name}'")] == ["t1"]


def _tiny_onnx() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return onnx.helper.make_model(graph).SerializeToString()
