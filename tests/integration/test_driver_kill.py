"""The driver killed with SIGKILL mid-search, then ``mqat search --resume``: the search completes,
the trials that had finished are not rerun, and no run is duplicated.

Every trial checkpoint forces a snapshot of the experiment, so a trial whose final report was
written is known to be done even when its end was not recorded: it returns at once on resume."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.processes import kill_all, started_by
from tests.integration.conftest import read_reports, short_ray_tmp, write_tiny_config


def _finals(experiment: Path) -> dict[str, int]:
    return {t.name: sum(bool(r.get("final")) for r in read_reports(t))
            for t in experiment.glob("train_mqat_*")}


def _killed(tmp_path: Path, until, *, num_samples: int = 6, settle: float = 0.0) -> SimpleNamespace:
    """A tiny search started by the CLI and SIGKILLed (the driver only: no chance to clean up or
    save) once ``until(experiment)`` holds, ``settle`` seconds later; what a resume needs, and the
    reports of the trials that had finished."""
    path = write_tiny_config(tmp_path, {"num_samples": num_samples, "max_concurrent": 2})
    ray_tmp = short_ray_tmp()
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    command = [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline, experiment = time.monotonic() + 300, None
        while time.monotonic() < deadline and experiment is None:
            runs = list((tmp_path / "out" / "ray").glob("tiny-*"))
            if runs and until(runs[0]):
                experiment = runs[0]
            time.sleep(0.2)
        assert experiment is not None, "no trial finished in time"
        time.sleep(settle)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        # what the driver had started (its local Ray) loses its parent; reap it, by pid
        kill_all(session=driver.pid, path=ray_tmp)
    kept = {name: read_reports(experiment / name) for name, n in _finals(experiment).items() if n}
    return SimpleNamespace(experiment=experiment, command=command, env=env, ray_tmp=ray_tmp, kept=kept,
                           pid=driver.pid)


def _resume(run: SimpleNamespace, timeout: float = 600) -> subprocess.CompletedProcess:
    """``--resume`` of a killed search, then every process of its Ray reaped."""
    try:
        return subprocess.run([*run.command, "--resume"], env=run.env, check=False, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)
    finally:
        kill_all(path=run.ray_tmp)
        shutil.rmtree(run.ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_driver_sigkill_then_resume(tmp_path):
    # two trials done, at least one more under way
    run = _killed(tmp_path, lambda e: sum(_finals(e).values()) >= 2 and len(_finals(e)) >= 3)
    experiment, kept = run.experiment, run.kept
    assert not started_by(session=run.pid, path=run.ray_tmp)
    second = _resume(run)
    assert second.returncode == 0, second.stderr[-3000:]
    assert 2 <= len(kept) < 6
    for name, reports in kept.items():                        # not rerun: not one report more
        assert read_reports(experiment / name) == reports
    from mlflow import MlflowClient

    from tracking.table import read_table
    rows = read_table(experiment / "trials.parquet")
    assert len(rows) == 6 and len({r["trial_id"] for r in rows}) == 6
    assert all(r["status"] == "finished" for r in rows)
    # every trial of the record ran to its end once, in its own directory. A trial that ended in
    # the milliseconds between its final report and Tune's next snapshot (this test kills right
    # after a final report: into that window) is unknown to the resumed Tune, which runs a new
    # trial in its place; its directory is left, in no record (no row, no MLflow child).
    finals = _finals(experiment)
    recorded = {Path(r["path"]).name for r in rows}
    assert all(finals[name] == 1 for name in recorded), finals
    assert len(set(finals) - recorded) <= 2, finals      # at most the trials running at the kill
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r.data.tags["trial_id"] for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(children) == sorted(r["trial_id"] for r in rows)   # one child per trial
    assert sum(r.data.tags.get("kind") == "search" for r in runs) == 1


def _record(tmp_path: Path, experiment: Path):
    """The search's table rows and MLflow runs (parent and children)."""
    from mlflow import MlflowClient

    from tracking.table import read_table
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "search"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return read_table(experiment / "trials.parquet"), client, parent, children


@pytest.mark.slow
def test_rounds_of_sigkill_and_sigint_then_resume_keep_the_record_whole(tmp_path):
    """One search interrupted at random moments (seeded) by SIGKILL and SIGINT, resumed each time:
    MLflow's pareto tags equal the table's front, the parent's hypervolume has one value per
    finished trial in order, every trial has one child and no stage is logged twice."""
    rng = random.Random(11)
    path = write_tiny_config(tmp_path, {"num_samples": 6, "max_concurrent": 2})
    ray_tmp = short_ray_tmp()
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    command = [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--quiet"]
    interruptions = []
    try:
        for round_, sig in enumerate([signal.SIGKILL, signal.SIGINT, signal.SIGKILL]):
            driver = subprocess.Popen(command + (["--resume"] if round_ else []), env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not list((tmp_path / "out" / "ray").glob("tiny-*/train_mqat_*")):
                time.sleep(0.2)
            time.sleep(rng.uniform(1.0, 12.0))        # a random moment of the running search
            if driver.poll() is None:
                driver.send_signal(sig)
                interruptions.append(sig.name)
            driver.wait(timeout=120)
            kill_all(session=driver.pid, path=ray_tmp)
        last = subprocess.run([*command, "--resume"], env=env, check=False, capture_output=True, text=True, timeout=600,
                              start_new_session=True)
    finally:
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert last.returncode == 0, last.stderr[-3000:]
    assert len(interruptions) >= 2, interruptions      # the search was interrupted, more than once
    (experiment,) = (tmp_path / "out" / "ray").glob("tiny-*")
    rows, client, parent, children = _record(tmp_path, experiment)
    assert len(rows) == 6 and all(r["status"] == "finished" for r in rows)
    by_trial = {c.data.tags["trial_id"]: c for c in children}
    assert len(children) == 6 and sorted(by_trial) == sorted(r["trial_id"] for r in rows)  # one child each
    assert {t: c.data.tags.get("pareto") for t, c in by_trial.items()} == {
        r["trial_id"]: str(r["pareto"]).lower() for r in rows}                          # tags = the table's front
    history = sorted(client.get_metric_history(parent.info.run_id, "hypervolume"), key=lambda m: m.timestamp)
    assert [m.step for m in history] == list(range(1, 7)), [m.step for m in history]
    assert [m.value for m in history] == sorted(m.value for m in history)
    for child in children:                                                              # no stage twice
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert sorted(steps) == list(range(len(steps))), steps


TUNE_STATE = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl")


def _truncate_tune_state(experiment: Path) -> list[str]:
    """What a driver killed while Tune writes its state leaves: the state files at 0 bytes."""
    truncated = []
    for pattern in TUNE_STATE:
        for state in experiment.glob(pattern):
            state.write_bytes(b"")
            truncated.append(state.name)
    return truncated


@pytest.mark.slow
def test_truncated_tune_state_then_resume_keeps_every_finished_trial(tmp_path):
    """Tune's state files truncated by a kill: ``--resume`` restores them from the last good copy
    kept beside the search; the finished trials keep their rows, results and MLflow runs."""
    run = _killed(tmp_path, lambda e: sum(_finals(e).values()) >= 3, settle=1.0)  # past the next snapshot
    experiment, kept = run.experiment, run.kept
    truncated = _truncate_tune_state(experiment)
    assert any(name.startswith("experiment_state-") for name in truncated), truncated
    second = _resume(run)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(kept) >= 3
    rows, client, _parent, children = _record(tmp_path, experiment)
    assert len(rows) == 6 and all(r["status"] == "finished" for r in rows), [r["status"] for r in rows]
    by_dir = {Path(r["path"]).name: r for r in rows}
    for name, reports in kept.items():               # every finished trial kept, with its result
        assert by_dir[name]["status"] == "finished"
        assert by_dir[name]["accuracy"] == reports[-1]["accuracy"] and reports[-1]["final"]
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(r["trial_id"] for r in rows)
    for child in children:                           # each stage logged once, resumed or not
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert sorted(steps) == sorted(set(steps)), steps


@pytest.mark.slow
def test_truncated_tune_state_without_a_good_copy_is_refused_in_one_line(tmp_path):
    run = _killed(tmp_path, lambda e: sum(_finals(e).values()) >= 1, num_samples=4, settle=1.0)
    experiment = run.experiment
    _truncate_tune_state(experiment)
    shutil.rmtree(experiment / ".tune-state-kept", ignore_errors=True)
    before = sorted(p.relative_to(experiment) for p in experiment.rglob("*"))
    second = _resume(run, timeout=300)
    assert second.returncode == 2, second.stderr[-3000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreadable" in lines[0] and "start a new search" in lines[0], lines
    assert sorted(p.relative_to(experiment) for p in experiment.rglob("*")) == before  # nothing written


def _checkpointing_trainable(config):
    """Reports with a checkpoint every few milliseconds: Tune snapshots its state after each one."""
    import tempfile

    from ray import tune

    for step in range(config["steps"]):
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "step").write_text(str(step))
            tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(directory))
        time.sleep(0.02)


def test_the_kept_state_is_the_snapshot_tune_wrote_in_the_same_step(ray_session, tmp_path):
    """Two trials checkpointing every few milliseconds (each checkpoint forces a snapshot): after
    every step of Tune's loop the kept copy is the snapshot Tune has just written, never one
    behind, so a resume from it forgets no trial that had checkpointed."""
    from ray import tune

    from search.tune_state import KEPT_DIR, StateKeeper

    experiment = tmp_path / "keep"

    class Compare(tune.Callback):  # runs after the keeper, in the same step
        def __init__(self):
            self.steps = []

        def on_step_end(self, iteration, trials, **info):
            if not trials:
                return
            staging = Path(trials[0].storage.experiment_driver_staging_path)
            written = sorted(staging.glob("experiment_state-*.json"))
            if written:
                kept = experiment / KEPT_DIR / written[-1].name
                self.steps.append((written[-1].read_bytes(), kept.read_bytes() if kept.exists() else b""))

    compare = Compare()
    tuner = tune.Tuner(
        tune.with_resources(_checkpointing_trainable, {"cpu": 1}),
        param_space={"steps": 25},
        tune_config=tune.TuneConfig(num_samples=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="keep", verbose=0,
                                  callbacks=[StateKeeper(str(experiment)), compare],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    results = tuner.fit()
    assert not results.errors
    snapshots = {written for written, _ in compare.steps}
    assert len(snapshots) >= 10, len(snapshots)          # Tune snapshotted often: the case at stake
    behind = sum(written != kept for written, kept in compare.steps)
    assert behind == 0, f"the kept state was behind Tune's in {behind} of {len(compare.steps)} steps"
