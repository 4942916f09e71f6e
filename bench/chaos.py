"""The chaos soak: one search on a local three-node Ray cluster (a head that runs no trial, two
one-CPU workers), logging over HTTP to an MLflow tracking server (PostgreSQL behind it where
installed), hit at seeded random moments by one fault a round:

- the driver killed (SIGKILL: no chance to save) or interrupted (SIGINT), then ``--resume``;
- a trial's worker process killed (SIGKILL), which Tune retries from its last stage checkpoint;
- a worker node removed, as a machine dies, and a fresh one added;
- the tracking server killed and started again a few seconds later.

The faults come from a shuffled deck, so every kind strikes once in each five rounds. Once the
search has ended, its record is checked whole (:func:`check_record`): each trial once in the
table and finished, one MLflow child a trial with each reported stage once, one hypervolume value
per ended trial in order, the ``pareto`` tags equal to the table's front, the registry equal to
the front, no orphan run. Printed: the rounds survived and every violation found.

    python -m bench --only chaos      # 20 rounds (--quick: 5)
"""
from __future__ import annotations

import itertools
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from search.config import merge
from tracking.report import reports

from .local_cluster import LocalCluster
from .processes import kill_all
from .searches import ROOT, TINY
from .timing import row
from .tracking_server import TrackingServer, tracking_server

SECTION = "chaos"
FAULTS = ("driver SIGKILL", "driver SIGINT", "worker SIGKILL", "node removed", "server restarted")
EXPERIMENT = "chaos"


@dataclass
class Soak:
    """What a soak did and found."""

    rounds: int = 0                                      # faults delivered, each survived or not
    faults: list[str] = field(default_factory=list)      # what each round did
    struck: list[str] = field(default_factory=list)      # the kinds of fault that hit something
    violations: list[str] = field(default_factory=list)  # what the record lost or doubled
    trials: int = 0
    backend: str = ""                                    # the tracking server's store
    wall_s: float = 0.0
    ended_early: bool = False                            # the search ended before the last round


@dataclass
class _Search:
    """The search under test, started again by ``--resume`` after each driver fault."""

    config: Path
    address: str
    env: dict[str, str]
    logs: Path
    driver: subprocess.Popen | None = None
    starts: int = 0
    stopped: bool = False  # whether the soak stopped the last driver (else it exited on its own)

    @property
    def experiment(self) -> Path | None:
        found = sorted((self.config.parent / "out" / "ray").glob(f"{EXPERIMENT}-*"))
        return found[0] if found else None

    def running(self) -> bool:
        return self.driver is not None and self.driver.poll() is None

    def start(self) -> None:
        command = [sys.executable, "-m", "search.cli", "search", "--config", str(self.config),
                   "--address", self.address, "--quiet"] + (["--resume"] if self.experiment else [])
        self.starts, self.stopped = self.starts + 1, False
        with open(self.logs / f"driver-{self.starts}.log", "w") as log:
            self.driver = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    def stop(self, sig: signal.Signals) -> None:
        assert self.driver is not None
        self.stopped = True
        self.driver.send_signal(sig)
        try:
            self.driver.wait(timeout=180)
        except subprocess.TimeoutExpired:  # an interrupted driver that will not stop is killed
            self.driver.kill()
            self.driver.wait(timeout=30)
        kill_all(session=self.driver.pid)

    def trials_running(self) -> list[dict]:
        """The latest report of each trial not yet ended (its worker's pid and node)."""
        if self.experiment is None:
            return []
        latest = [found[-1] for t in self.experiment.glob("train_mqat_*") if (found := reports(t))]
        return [r for r in latest if not r.get("final") and _alive(r.get("pid"))]

    def trials_ended(self) -> int:
        found = self.experiment.glob("train_mqat_*") if self.experiment else []
        return sum(any(r.get("final") for r in reports(t)) for t in found)

    def log_tail(self) -> str:
        return (self.logs / f"driver-{self.starts}.log").read_text()[-2000:]


def _alive(pid) -> bool:
    """Whether the worker that wrote a report still runs (a trial interrupted with an earlier
    driver left a report whose worker is gone)."""
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


def _config(root: Path, trials: int, uri: str) -> Path:
    """The tiny task (the bench's quick one), searched with retries enough for the faults, its
    stages fine-tuned on 256 images (the quick bench's 32 make a trial of about 3 s: the faults'
    own seconds, a driver's or a node's restart, then outlast dozens of trials)."""
    config = merge(TINY, {"name": EXPERIMENT, "cache_dir": str(ROOT / "runs" / "cache"), "output_dir": str(root / "out"),
                          "tracking": {"uri": uri, "experiment": EXPERIMENT},
                          "search": {"num_samples": trials, "max_concurrent": 2, "max_failures": 20,
                                     "stage": {"images_per_epoch": 256},
                                     "resources": {"cpus_per_trial": 1}, "storage": {"shared": True},
                                     "deploy": {"onnx": True}}})
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _strike(fault: str, search: _Search, cluster: LocalCluster, server: TrackingServer,
            rng: random.Random) -> tuple[str, bool]:
    """Deliver one fault; returns what was done and whether it hit anything."""
    if fault.startswith("driver"):
        search.stop(signal.SIGKILL if fault.endswith("SIGKILL") else signal.SIGINT)
        return f"{fault} (exit {search.driver.returncode})", True
    if fault == "server restarted":
        server.stop()
        down = rng.uniform(2.0, 8.0)
        time.sleep(down)
        server.start()
        return f"{fault} after {down:.1f} s down", True
    deadline = time.monotonic() + 60  # a trial between retries runs nowhere: wait for one that runs
    while not (running := search.trials_running()) and time.monotonic() < deadline and search.running():
        time.sleep(0.2)
    if not running:
        return f"{fault}: no trial was running, nothing struck", False
    victim = rng.choice(running)
    if fault == "worker SIGKILL":
        try:
            os.kill(int(victim["pid"]), signal.SIGKILL)
        except ProcessLookupError:
            return f"{fault}: trial {victim['trial_id']}'s worker had already gone", False
        return f"{fault} of trial {victim['trial_id']} at stage {victim.get('stage')}", True
    removed = cluster.replace_node(victim.get("node_id"))
    return f"{fault} ({removed[:8]}, running trial {victim['trial_id']}), a fresh one added", True


def _wait_for_reports(search: _Search, count: int, timeout: float = 300) -> bool:
    """Until this driver's trials have made ``count`` more reports (its first start pretrains and
    plans first); whether the driver still runs."""
    def made() -> dict[Path, int]:
        return {t: len(reports(t)) for t in search.experiment.glob("train_mqat_*")} if search.experiment else {}

    seen, deadline = made(), time.monotonic() + timeout
    while time.monotonic() < deadline and search.running():
        if sum(max(0, n - seen.get(t, 0)) for t, n in made().items()) >= count:
            return True
        time.sleep(0.2)
    return search.running()


def soak(root: Path, *, rounds: int = 20, trials: int | None = None, seed: int = 0,
         log=print) -> Soak:
    """``rounds`` faults on one search of ``trials`` trials (default: eight a round, so that the
    search outlasts the soak), then its record checked. Everything it starts is stopped before
    it returns."""
    rng, result, started = random.Random(seed), Soak(trials=trials or 8 * rounds), time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # AF_UNIX socket paths must stay short
    # a cluster with token authentication, as a real one runs (the driver refuses one without)
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    deck: list[str] = []
    cluster = LocalCluster(root / "cluster", env=env)
    try:
        with tracking_server(root / "server") as (server, result.backend):
            search = _Search(_config(root, result.trials, server.uri), cluster.start(), env, root)
            while result.rounds < rounds:
                if not search.running():
                    if search.driver is not None and search.driver.returncode != 0 and not search.stopped:
                        result.violations.append(f"driver {search.starts} exited {search.driver.returncode} "
                                                 f"with no fault: {search.log_tail()}")
                    if search.driver is not None and search.driver.returncode == 0:
                        result.ended_early = True  # the search ended before the soak did
                        log(f"[chaos] the search ended after {result.rounds} of {rounds} rounds: give it more trials")
                        break
                    search.start()
                # a random moment of the running search, drawn in its progress (one to three stage
                # reports, then up to a second), not in wall time: a faster machine cannot end the
                # search before the last round (at 1-8 s a round, one ended after 4 of 5 rounds)
                if not _wait_for_reports(search, rng.randint(1, 3)):
                    continue
                time.sleep(rng.uniform(0.0, 1.0))
                if not search.running():
                    continue
                deck = deck or rng.sample(FAULTS, len(FAULTS))
                fault = deck.pop()
                what, hit = _strike(fault, search, cluster, server, rng)
                result.faults.append(what)
                result.struck += [fault] if hit else []
                result.rounds += 1
                log(f"[chaos] round {result.rounds}/{rounds}: {result.faults[-1]}")
            if not result.ended_early:  # the margin the search had: what sizes ``trials``
                log(f"[chaos] after the last round {search.trials_ended()} of {result.trials} trials had ended")
            if not search.running() and search.driver.returncode != 0:
                search.start()  # the last fault stopped the driver: resumed, to the search's end
            search.driver.wait(timeout=3600)
            if search.driver.returncode != 0:
                result.violations.append(f"the last driver exited {search.driver.returncode}: {search.log_tail()}")
            elif search.experiment is not None:
                result.violations += check_record(search.experiment, server.uri, result.trials)
    finally:
        cluster.stop()
        kill_all(path=ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    result.wall_s = time.monotonic() - started
    for violation in result.violations:
        log(f"[chaos] violation: {violation}")
    return result


def check_record(experiment: Path, uri: str, trials: int, name: str = EXPERIMENT) -> list[str]:
    """Every way the search's record can be lost or doubled, one line each (none: whole)."""
    from mlflow import MlflowClient

    from tracking.mlflow_tracker import registered_name
    from tracking.table import read_table

    rows = read_table(experiment / "trials.parquet")
    ids = [r["trial_id"] for r in rows]
    found = []
    if len(ids) != trials or len(set(ids)) != len(ids):
        found.append(f"table: {len(ids)} rows of {len(set(ids))} trials, {trials} expected")
    found += [f"table: trial {r['trial_id']} is {r['status']}" for r in rows if r["status"] != "finished"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=50000)
    parents = [r for r in runs if r.data.tags.get("kind") == "search"]
    if len(parents) != 1:
        return [*found, f"mlflow: {len(parents)} parent runs"]
    children: dict[str, list] = {}
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags:
            children.setdefault(run.data.tags.get("trial_id", "?"), []).append(run)
    found += [f"mlflow: orphan child run of trial {t}" for t in sorted(set(children) - set(ids))]
    for r in rows:
        runs_of = children.get(r["trial_id"], [])
        if len(runs_of) != 1:
            found.append(f"mlflow: trial {r['trial_id']} has {len(runs_of)} child runs")
            continue
        found += _child_violations(client, runs_of[0], r)
    found += _hypervolume_violations(client, parents[0].info.run_id, len(rows))
    registered = {v.tags.get("trial_id") for v in client.search_model_versions(f"name = '{registered_name(str(experiment))}'")}
    front = {r["trial_id"] for r in rows if r["pareto"]}
    if registered != front:
        found.append(f"registry: {sorted(registered)} registered, the front is {sorted(front)}")
    return found


def _child_violations(client, child, r: dict) -> list[str]:
    """A child run finished, tagged as the table marks it, holding each reported stage once."""
    trial, found = r["trial_id"], []
    if child.info.status != "FINISHED":
        found.append(f"mlflow: trial {trial}'s run is {child.info.status}")
    if child.data.tags.get("pareto") != str(r["pareto"]).lower():
        found.append(f"mlflow: trial {trial} tagged pareto={child.data.tags.get('pareto')}, the table says {r['pareto']}")
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
    stages = {int(report.get("stage", 0)) for report in reports(Path(r["path"]))}
    if len(steps) != len(set(steps)) or set(steps) != stages:
        found.append(f"mlflow: trial {trial}'s stages {sorted(steps)}, it reported {sorted(stages)}")
    return found


def _hypervolume_violations(client, parent: str, ended: int) -> list[str]:
    history = sorted(client.get_metric_history(parent, "hypervolume"), key=lambda m: m.step)
    found = []
    if [m.step for m in history] != list(range(1, ended + 1)):
        found.append(f"mlflow: hypervolume steps {[m.step for m in history]}, {ended} trials ended")
    if any(b.value < a.value for a, b in itertools.pairwise(history)):
        found.append("mlflow: the hypervolume fell between steps")
    return found


def run(quick: bool = False) -> list[dict]:
    rounds = 5 if quick else 20
    root = ROOT / "runs" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"  # kept: the drivers' logs explain a violation
    result = soak(root, rounds=rounds, log=lambda line: print(line, flush=True))
    print(f"[chaos] the soak's search, server and driver logs: {root}", flush=True)
    rows = [row(SECTION, f"rounds survived of {rounds} ({result.trials} trials, {result.backend} server)",
                result.rounds, goal=f"{rounds} rounds, no violation",
                met=result.rounds == rounds and not result.violations, faults=result.faults,
                note="the search ended before the last round" if result.ended_early else None)]
    rows += [row(SECTION, f"violation: {v[:200]}", None, note="lost or doubled") for v in result.violations]
    rows.append(row(SECTION, "wall time (s)", result.wall_s))
    return rows
