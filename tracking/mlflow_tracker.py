"""MLflow from the driver only (one writer, so a SQLite store holds up).

One parent run per search, one child run per trial (tag ``mlflow.parentRunId``). Runs are
found again by tag (``search_path`` for the parent, ``trial_id`` for a child), so a retried or
resumed trial continues its own child run and a resumed search its own parent. After every
finished trial the trials table, ``pareto.png`` and the parent's hypervolume are updated, the
children on the front are tagged ``pareto=true`` and their models logged: the packed file under
``model/`` and the ONNX export as an MLflow ONNX model under ``onnx/``. After the search the
children are brought in line with the final table (``log_final``) and the front's ONNX models
are registered in the Model Registry under the search's name
(``register_front``), one version per front point, aliased ``front-1``, ``front-2``, ... by
compression.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from .artifacts import MODEL_FILE, ONNX_FILE
from .live_table import LiveTable
from .objectives import OBJECTIVES, complete, maximised
from .pareto import REFERENCE, hypervolume
from .report import TEST_FIELDS
from .results import error_line

#: MLflow 3 opens an experiment of no declared kind on its GenAI view ("Traces 0"); this kind,
#: the value its UI reads from the ``mlflow.experimentKind`` tag, opens the runs table.
EXPERIMENT_KIND = "custom_model_development"
#: A saved runs-table view (the UI's "share view" format, an experiment tag), opened by
#: ``#/experiments/<id>?viewStateShareKey=mqat``: the children's figures as columns.
VIEW_KEY = "mqat"
VIEW = {"selectedColumns": [f"metrics.`{m}`" for m in dict.fromkeys(
    ("accuracy", "accuracy_se", *(o.key for o in OBJECTIVES.values()), "model_bytes", "hypervolume"))]
    + ["tags.`pareto`"]}
#: The MLflow 3 UI opens an experiment on its GenAI view ("Traces 0") whatever the experiment's
#: kind tag says, unless the link asks for its model-training view: a query parameter its UI reads
#: (and keeps in the browser), found in MLflow 3.17's UI code (``workflowType``).
UI_QUERY = f"workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
#: what a registered front model is tagged with: its figures, every objective among them
REGISTRY_TAGS = tuple(dict.fromkeys(("trial_id", "accuracy", "test_accuracy", *(o.key for o in OBJECTIVES.values()),
                                     "model_bytes", "onnx_bytes", "latency_provider", "speedup_vs_fp",
                                     "test_accuracy_onnx")))


def registered_name(search_path: str) -> str:
    """The Model Registry name of a search's front: the search's own name (``quickstart-<date>-<time>``),
    from its directory or object-store URI (its query, such as an endpoint, left out)."""
    from urllib.parse import urlparse

    path = urlparse(search_path).path if "://" in search_path else search_path
    return Path(path.rstrip("/")).name


def default_uri(output_dir: str | Path) -> str:
    """A SQLite file in the search's output directory."""
    return f"sqlite:///{(Path(output_dir) / 'mlflow.db').resolve()}"


def open_store(uri: str) -> None:
    """Create or upgrade a SQLite store under an exclusive file lock. Searches started together
    on one new store would each run MLflow's schema migrations, and all but one fail
    ("... in 'alembic_version'; 0 found"); once the store exists, opening it only reads."""
    if not uri.startswith("sqlite:///"):
        return  # a server creates its own schema
    import fcntl

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on an error
        SqlAlchemyStore(uri, (db.parent / "mlartifacts").resolve().as_uri())


class MLflowTracker(Callback):
    """A Tune callback that records the search in MLflow and keeps the table and plot current."""

    def __init__(self, *, uri: str, experiment: str, search_path: str, table: LiveTable,
                 params: dict[str, Any], artifacts: dict[str, Any], reference: tuple[float, ...] = REFERENCE):
        self.uri, self.experiment, self.search_path = uri, experiment, search_path
        self.reference = tuple(reference)  # of the hypervolume, in the table's objectives
        self.table = table  # the rows, the trials table and the plot (kept up to date here)
        self.params, self.artifacts = params, artifacts
        self._client = None
        self._parent: str | None = None
        self._children: dict[str, str] = {}
        self._logged_models: set[str] = set()
        self._logged_steps: dict[str, set[int]] = {}  # trial id -> stages its child run holds
        self._parent_steps: set[int] | None = None   # steps of the parent's hypervolume
        self._pareto_tags: dict[str, str] = {}       # trial id -> the pareto tag its child run holds
        self._unfinished: set[str] = set()           # trials whose run was ended short of their end
        self._children_loaded = False                # _children holds every child run (after setup)

    def __getstate__(self):  # Tune pickles callbacks with its experiment state
        state = dict(self.__dict__)
        state["_client"] = None
        state["_children_loaded"] = False  # a resumed driver reads the children again (setup)
        return state

    # ---- runs ---------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient
            open_store(self.uri)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            location = None
            if self.uri.startswith("sqlite:"):  # artifacts beside the database, not in ./mlruns
                location = (self.table.output_dir / "mlartifacts").resolve().as_uri()
            try:
                return self._declare(self.client.create_experiment(self.experiment, artifact_location=location))
            except MlflowException:
                # another search created it meanwhile (names are unique): use theirs
                found = self.client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND:  # made before the kind was set
            self._declare(found.experiment_id)
        return found.experiment_id

    def _declare(self, experiment_id: str) -> str:
        """The experiment's kind and runs-table view (see ``EXPERIMENT_KIND`` and ``VIEW``)."""
        self.client.set_experiment_tag(experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND)
        self.client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{VIEW_KEY}", json.dumps(VIEW))
        return experiment_id

    def _find(self, experiment_id: str, filter_string: str) -> str | None:
        runs = self.client.search_runs([experiment_id], filter_string=filter_string, max_results=1)
        return runs[0].info.run_id if runs else None

    def _child_run(self, trial_id: str):
        """The MLflow run of ``trial_id`` under this search's parent, or None (found by its tags:
        a tracker made after the search, or a resumed one, holds no map of them yet)."""
        runs = self._child_runs(trial_id, max_results=1)
        return runs[0] if runs else None

    def _child_runs(self, trial_id: str, max_results: int = 1000) -> list:
        return self.client.search_runs([self._experiment_id()], max_results=max_results, filter_string=(
            f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent()}'"))

    def ui_link(self) -> str:
        """How to look at this search in the MLflow UI, opened on its runs table."""
        page = f"#/experiments/{self._experiment_id()}?{UI_QUERY}"
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/{page}"
        return f"mlflow ui --backend-store-uri {self.uri} --host 127.0.0.1 --port 5000, then http://127.0.0.1:5000/{page}"

    def parent(self) -> str:
        if self._parent is None:
            from mlflow.entities import Param

            exp = self._experiment_id()
            self._parent = self._find(exp, f"tags.search_path = '{self.search_path}'")
            if self._parent is None:
                run = self.client.create_run(exp, run_name=Path(self.search_path).name,
                                             tags={"search_path": self.search_path, "kind": "search"})
                self._parent = run.info.run_id
                self.client.set_tag(self._parent, "mlflow.note.content", (
                    f"One search: its trials are the child runs. Their accuracy and compression as "
                    f"columns: open `#/experiments/{exp}?{UI_QUERY}` in the MLflow UI."))
                self.client.log_batch(self._parent, params=[Param(k, str(v)[:6000])
                                                            for k, v in self.params.items()])
                for name, content in self.artifacts.items():
                    self.client.log_text(self._parent, json.dumps(content, indent=1), f"{name}.json")
        return self._parent

    def child(self, trial) -> str:
        trial_id = trial.trial_id
        if trial_id not in self._children:
            from mlflow.entities import Param

            parent = self.parent()
            exp = self._experiment_id()
            found = None
            if not self._children_loaded:  # else every child this search has is in _children already
                run = self._child_run(trial_id)
                found = run.info.run_id if run else None
            if found is None:
                seed = any(all(trial.config.get(k) == v for k, v in s.items()) for s in self.table.seeds)
                run = self.client.create_run(exp, run_name=trial_id, tags={
                    "mlflow.parentRunId": parent, "trial_id": trial_id, "ilp_seed": str(seed).lower()})
                # held before the next write: a hook retried after that write failed (the server
                # unreachable) must find this run, not make the trial a second one
                self._children[trial_id] = found = run.info.run_id
                self._drop_duplicate_children(trial_id, keep=found)
                self._logged_steps[trial_id] = set()  # a new run holds no stage yet: nothing to read back
                self.client.log_batch(found, params=[Param(k, str(v)) for k, v in trial.config.items()])
            self._children[trial_id] = found
        return self._children[trial_id]

    def _drop_duplicate_children(self, trial_id: str, keep: str) -> None:
        """A ``create_run`` whose answer was lost (the server killed after it wrote the run) is
        sent again, by MLflow's HTTP retries or by the writer trying the hook again, and the
        server makes a second run. Only the newest, whose id came back, is written to: the
        others hold nothing and are deleted."""
        for run in self._child_runs(trial_id):
            if run.info.run_id != keep:
                self.client.delete_run(run.info.run_id)

    # ---- Tune hooks ---------------------------------------------------------------------
    def setup(self, **info):
        self.parent()
        self._load_children()
        if not self.table.rows:
            self._restore()

    def _load_children(self) -> None:
        """The child runs this search already has (after ``--resume``), read once: a trial not
        among them then gets a new run without a query per trial."""
        children = self.client.search_runs([self._experiment_id()], max_results=50000,
                                           filter_string=f"tags.`mlflow.parentRunId` = '{self.parent()}'")
        for run in sorted(children, key=lambda r: r.info.start_time, reverse=True):  # the newest first
            trial_id = run.data.tags.get("trial_id", run.info.run_id)
            if self._children.setdefault(trial_id, run.info.run_id) != run.info.run_id:
                self.client.delete_run(run.info.run_id)  # a duplicate a killed driver left (_drop_duplicate_children)
                continue
            if run.data.tags.get("unfinished") == "true":
                self._unfinished.add(trial_id)
            if "pareto" in run.data.tags:  # what MLflow holds: only a changed tag is written again
                self._pareto_tags.setdefault(trial_id, run.data.tags["pareto"])
        self._children_loaded = True

    def _restore(self) -> None:
        """After ``--resume`` Tune hands back this callback as it was pickled at the start, empty:
        the rows come back from the table last logged on the parent and the children from MLflow,
        so the front, its ``pareto`` tags and the hypervolume's steps continue where they were."""
        import tempfile

        parent = self.parent()
        if not self._children:
            return  # a new search
        with tempfile.TemporaryDirectory() as tmp:
            from mlflow.exceptions import MlflowException

            try:
                table = self.client.download_artifacts(parent, "trials.parquet", tmp)
            except (MlflowException, OSError):  # no trial had ended: nothing to restore
                return
            self.table.restore(table)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.child(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """Log the stage's metrics at its stage index, once. A stage runs again when its worker
        died before Tune held the stage's checkpoint, or when a resumed driver's snapshot is older
        than the last report; it is reseeded, so the first record stands and the rerun is not logged."""
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(result.get("stage", 0))
        logged = self._steps_logged(trial)
        if step in logged:
            return
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("stage",)]
        self.client.log_batch(self.child(trial), metrics=metrics)
        logged.add(step)

    def _steps_logged(self, trial) -> set[int]:
        """The stage indexes the trial's child run holds (read from MLflow once per driver: a
        resumed driver starts from the callback pickled at the start)."""
        if trial.trial_id not in self._logged_steps:
            history = self.client.get_metric_history(self.child(trial), "training_iteration")
            self._logged_steps[trial.trial_id] = {m.step for m in history}
        return self._logged_steps[trial.trial_id]

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, error=None, trials=trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error=error_line(trial), trials=trials)

    def on_experiment_end(self, trials, **info):
        self._backfill(trials)
        self._drop_lost_children({t.trial_id for t in trials})
        if self.table.finish():
            self._tag_front(list(self.table.rows.values()))  # a tag lost with a killed driver's last writes
            self._log_table()
        self.client.set_terminated(self.parent(), "FINISHED")

    def _backfill(self, trials) -> None:
        """Tune's ``result.json`` files are the durable record, MLflow a view of them: a trial that
        ended while its events still waited for the writer thread (a driver killed then) is
        restored at the resumed search's end, through the same writes as a live end: its child
        run, each stage once (from ``result.json``), its end, the table, tags and front model."""
        ended = [t for t in trials if getattr(t, "status", None) in ("TERMINATED", "ERROR")]
        running = {r.data.tags.get("trial_id") for r in self.client.search_runs(
            [self._experiment_id()], max_results=50000,
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent()}' and attributes.status = 'RUNNING'")}
        for trial in ended:
            if trial.trial_id in self._children and trial.trial_id not in running | self._unfinished:
                continue  # its whole end reached MLflow (a run is ended last): nothing was lost
            self._finish(trial, error=error_line(trial) if trial.status == "ERROR" else None, trials=trials)

    def _log_lost_stages(self, trials, trial) -> None:
        """Each stage in the trial's ``result.json`` that its child run lacks: a driver killed with
        stage reports still waiting for the writer loses them, and the resumed trial goes on from
        its checkpoint without reporting them again."""
        from .report import trial_reports

        for result in trial_reports(trial):
            self.on_trial_result(None, trials, trial, result)

    def _drop_lost_children(self, known: set[str]) -> None:
        """A trial started in the seconds between Tune's last snapshot and a killed driver is
        forgotten on ``--resume`` and run again under a new id: its orphan child run is deleted,
        so every trial of the search has exactly one child. Only a run that never reported an end
        (still RUNNING) is an orphan: whatever Tune forgot, a trial that ended keeps its record."""
        runs = self.client.search_runs([self._experiment_id()], max_results=50000,
                                       filter_string=f"tags.`mlflow.parentRunId` = '{self.parent()}'")
        for run in runs:
            trial_id = run.data.tags.get("trial_id")
            if trial_id is not None and trial_id not in known and run.info.status == "RUNNING":
                self.client.delete_run(run.info.run_id)
                self._children.pop(trial_id, None)

    # ---- after each trial ---------------------------------------------------------------
    def _finish(self, trial, error: str | None, trials=()) -> None:
        # the table first: it is the search's own record, written whether MLflow answers or not
        drawn = self.table.drawn_at
        on_front = self.table.add(trial, error, trials)["pareto"]
        run_id = self.child(trial)
        self._log_lost_stages(trials, trial)
        # ended short of its final report: a search interrupted (Tune marks the trials it stops
        # then as ended, and they run on after --resume) or out of budget
        unfinished = not error and not (trial.last_result or {}).get("final")
        if error:
            self.client.set_tag(run_id, "error", error)
        rows = list(self.table.rows.values())
        self._log_hypervolume_history(rows)
        self._tag_front(rows)
        if on_front and not error:
            self._log_model(trial)
        # the table every time (a resumed driver restores its rows from it), the plot when redrawn
        self._log_table(plot=self.table.drawn_at != drawn)
        if unfinished or trial.trial_id in self._unfinished:  # the backfill writes it again if so
            self.client.set_tag(run_id, "unfinished", str(unfinished).lower())
            (self._unfinished.add if unfinished else self._unfinished.discard)(trial.trial_id)
        # last: an ended run says its whole end was written, so a driver killed before this line
        # leaves it running, and the resumed search's backfill writes the end again
        self.client.set_terminated(run_id, "FAILED" if error else "KILLED" if unfinished else "FINISHED")

    def _tag_front(self, rows: list[dict[str, Any]]) -> None:
        """Each child's ``pareto`` tag as the table marks it; only the tags that changed are
        written: one write per trial, not one per trial per trial."""
        for r in rows:
            child, tag = self._children.get(r["trial_id"]), str(r["pareto"]).lower()
            if child and self._pareto_tags.get(r["trial_id"]) != tag:
                self.client.set_tag(child, "pareto", tag)
                self._pareto_tags[r["trial_id"]] = tag

    def _log_table(self, plot: bool = True) -> None:
        if plot:
            self.client.log_artifact(self.parent(), str(self.table.plot_path))
        self.client.log_artifact(self.parent(), str(self.table.table_path))

    def _log_hypervolume_history(self, rows: list[dict[str, Any]]) -> None:
        """The parent's hypervolume and finished count at each step k (the first k trials ended,
        in the table's order), once per step. Every step not yet logged is written: a trial whose
        end a killed driver never recorded enters the table beside the next one to end (two
        rows at once), and its step is not skipped; a trial that ends again after a resume logs
        nothing new."""
        from mlflow.entities import Metric

        if self._parent_steps is None:  # a resumed driver starts from the callback pickled at the start
            self._parent_steps = {m.step for m in self.client.get_metric_history(self.parent(), "hypervolume")}
        missing = [k for k in range(1, len(rows) + 1) if k not in self._parent_steps]
        if not missing:
            return
        now, metrics = int(time.time() * 1000), []
        for step in missing:
            done = [r for r in rows[:step] if complete(r, self.table.objectives)]
            volume = hypervolume(maximised(done, self.table.objectives), self.reference)
            at = now - (len(rows) - step)  # steps written together keep their order in time too
            metrics += [Metric("hypervolume", volume, at, step), Metric("trials_finished", float(len(done)), at, step)]
        self.client.log_batch(self.parent(), metrics=metrics)
        self._parent_steps.update(missing)

    def log_final(self, rows: list[dict[str, Any]], checkpoints: dict[str, Any]) -> None:
        """After the search, MLflow made a view of the final table (``rows``, read from Tune's
        results): each child's ``pareto`` tag as the table marks it, the model of every front
        point that has none yet, the front's held-out test scores, and the table and plot on the
        parent. The live rows the trials' ends were logged from can differ from the final ones
        (after ``--resume``, a row restored from an older table; a trial Tune forgot), and the
        chaos soak found front trials tagged ``pareto=false`` and left out of the registry.
        ``checkpoints``: each trial's last checkpoint, by trial id."""
        from mlflow.entities import Metric

        children = {run.data.tags.get("trial_id"): run for run in self.client.search_runs(
            [self._experiment_id()], max_results=50000, filter_string=f"tags.`mlflow.parentRunId` = '{self.parent()}'")}
        now = int(time.time() * 1000)
        for r in rows:
            run = children.get(r["trial_id"])
            if run is None:
                continue
            tag = str(r["pareto"]).lower()
            if run.data.tags.get("pareto") != tag:
                self.client.set_tag(run.info.run_id, "pareto", tag)
            if r["pareto"] and not r.get("error") and checkpoints.get(r["trial_id"]) is not None \
                    and run.data.tags.get("onnx") != "true":  # the tag is a model's last write
                self._log_checkpoint_model(run.info.run_id, checkpoints[r["trial_id"]],
                                           packed_logged=bool(self.client.list_artifacts(run.info.run_id, "model")))
            scores = [Metric(k, float(r[k]), now, 0) for k in TEST_FIELDS if r.get(k) is not None]
            if scores:
                self.client.log_batch(run.info.run_id, metrics=scores)
        self._log_table()

    def _log_model(self, trial) -> None:
        """The front point's packed model (``mqat.load_packed``) as an artifact of its child run,
        and its ONNX export, where the trial made one, as an MLflow ONNX model."""
        if trial.trial_id in self._logged_models or trial.checkpoint is None:
            return
        if self._log_checkpoint_model(self.child(trial), trial.checkpoint):
            self._logged_models.add(trial.trial_id)

    def _log_checkpoint_model(self, run_id: str, checkpoint, packed_logged: bool = False) -> bool:
        """The model files in ``checkpoint`` logged to ``run_id`` (the packed one unless it is
        already: a driver killed between the two files left only that); whether it held a model."""
        with checkpoint.as_directory() as directory:
            model, onnx_file = Path(directory) / MODEL_FILE, Path(directory) / ONNX_FILE
            if not model.is_file():
                return False
            if not packed_logged:
                self.client.log_artifact(run_id, str(model), "model")
            if onnx_file.is_file():
                self._log_onnx(run_id, onnx_file)
            return True

    def _log_onnx(self, run_id: str, path: Path) -> None:
        """``path`` as an MLflow ONNX model (``MLmodel`` beside ``model.onnx``) under ``onnx/``."""
        import tempfile

        import mlflow.onnx
        import onnx

        with tempfile.TemporaryDirectory() as tmp:
            mlflow.onnx.save_model(onnx.load(str(path)), str(Path(tmp) / "onnx"))
            self.client.log_artifacts(run_id, str(Path(tmp) / "onnx"), "onnx")
        self.client.set_tag(run_id, "onnx", "true")

    def register_front(self, rows: list[dict[str, Any]]) -> str | None:
        """Register the front's ONNX models under the search's name, one version per point,
        aliased ``front-<k>`` (k counts up with compression) and tagged with its figures; the
        registry holds this front only (versions of an earlier run of it are removed). Returns
        the registered name, or None if no front model has an ONNX export."""
        from mlflow.exceptions import MlflowException

        front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["compression"])
        runs = {}
        for r in front:
            run = self._child_run(r["trial_id"])
            if run is not None and run.data.tags.get("onnx") == "true":
                runs[r["trial_id"]] = run
        if not runs:
            return None
        name = registered_name(self.search_path)
        try:
            self.client.create_registered_model(name, tags={"search_path": self.search_path},
                                                description="The Pareto front of an mqat search, as ONNX (QDQ).")
        except MlflowException:  # a resumed search registers again: start from an empty list
            for version in self.client.search_model_versions(f"name = '{name}'"):
                self.client.delete_model_version(name, version.version)
        for k, r in enumerate((r for r in front if r["trial_id"] in runs), start=1):
            run = runs[r["trial_id"]]
            tags = {key: str(r[key]) for key in REGISTRY_TAGS if r.get(key) is not None}
            version = self.client.create_model_version(name, f"{run.info.artifact_uri}/onnx",
                                                       run_id=run.info.run_id, tags=tags)
            self.client.set_registered_model_alias(name, f"front-{k}", version.version)
        return name
