"""A real Tune run: Optuna proposes, Ray runs two MQAT trials on a tiny pose task."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest


def _reports(trial_path: str) -> list[dict]:
    lines = (Path(trial_path) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
def test_two_trial_search_reports_every_stage(ray_session, tiny_config):
    from search.run import run_search

    config = tiny_config()
    log = []
    result = run_search(config, progress=False, log=log.append)
    assert len(result.rows) == 2
    assert all(r["status"] == "finished" for r in result.rows), result.rows
    # the ILP seeds (deduplicated: with random weights two targets may share a plan) run first
    by_start = sorted(result.rows, key=lambda r: int(Path(r["path"]).name.split("_")[3]))
    seeds = len(result.prepared.seeds)
    assert seeds >= 1 and [r["ilp_seed"] for r in by_start] == [True] * seeds + [False] * (2 - seeds)
    for r in result.rows:
        stages = [rep.get("stage_name", rep.get("name")) for rep in _reports(r["path"])]
        expected = r["order"].split(">") + (["qc"] if r["qc"] else []) + ["final"]
        assert stages == expected
        assert 0.0 <= r["accuracy"] <= 1.0 and r["compression"] >= 4.0 * 0.999
        final = _reports(r["path"])[-1]
        assert final["time_mqat_s"] > 0 and final["node_id"]
    assert any(r["pareto"] for r in result.rows)
    finished = [line for line in log if re.search(r"ADD-0\.1d [\d.]+ at [\d.]+x \| front", line)]
    assert len(finished) == 2                           # one progress line per finished trial
    assert any(line.startswith("FP model: ADD-0.1d") for line in log)   # pretrained, figures shown

    # MLflow: one parent, exactly one child per trial, the front tagged as in the table
    from mlflow import MlflowClient

    from tracking.mlflow_tracker import default_uri
    from tracking.table import read_table

    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    experiment = client.get_experiment_by_name(config.name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "search"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(r["trial_id"] for r in result.rows)
    table = read_table(result.path / "trials.parquet")
    tagged = {r.data.tags["trial_id"] for r in children if r.data.tags.get("pareto") == "true"}
    assert tagged == {r["trial_id"] for r in table if r["pareto"]}
    assert all(r.info.status == "FINISHED" for r in children)
    assert "hypervolume" in parents[0].data.metrics
    for r in children:
        assert {"accuracy", "compression"} <= set(r.data.metrics)
        history = client.get_metric_history(r.info.run_id, "compression")
        assert len(history) == len(_reports(next(x["path"] for x in result.rows
                                                 if x["trial_id"] == r.data.tags["trial_id"])))
    front_runs = [r for r in children if r.data.tags.get("pareto") == "true"]
    assert all(client.list_artifacts(r.info.run_id, "model") for r in front_runs)
    assert all(r.data.tags.get("onnx") == "true" for r in front_runs)

    # every trial exported ONNX and timed it, in the default runtime (auto: OpenVINO, installed
    # by the set-up, on this CPU); the front sits in the registry, one alias a point
    for r in result.rows:
        assert r["onnx_bytes"] > 0 and 0 < r["latency_ms"] and r["latency_provider"].startswith("openvino:CPU (")
        # beside the FP model timed alike, on the same node
        assert r["fp_latency_ms"] > 0 and r["speedup_vs_fp"] == pytest.approx(r["fp_latency_ms"] / r["latency_ms"])
    _assert_front_registered(client, config, result)
    assert (result.path / "pareto.png").stat().st_size > 10_000
    # the front, and only the front, is scored on the held-out test split; each trial has a seed
    for r in table:
        assert (r["test_accuracy"] is not None) == r["pareto"], r
    assert len({r["seed"] for r in table}) == 2 and all(isinstance(r["seed"], int) for r in table)
    front_children = [r for r in children if r.data.tags.get("pareto") == "true"]
    assert front_children and all("test_accuracy" in r.data.metrics for r in front_children)
    # and each front model's ONNX file, run in ONNX Runtime, scored on the same images
    for r in table:
        assert (r["test_accuracy_onnx"] is not None) == r["pareto"], r
        if r["pareto"]:
            assert abs(r["test_accuracy_onnx"] - r["test_accuracy"]) <= 2 * r["test_accuracy_se"] + 1e-9
    assert all("test_accuracy_onnx" in r.data.metrics for r in front_children)
    assert any(line.startswith("scored the") and "test split" in line for line in log)

    # mqat report rebuilds the same rows from the directory alone, found also by its run id
    import contextlib
    import io

    from search.cli import main
    (result.path / "trials.parquet").unlink()
    for target in (str(result.path), parents[0].info.run_id):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["report", target, "--tracking-uri", default_uri(config.output_dir)]) == 0
        assert f"{result.path}: 2 finished of 2 trials" in out.getvalue()
    rebuilt = {r["trial_id"]: r for r in read_table(result.path / "trials.parquet")}
    for r in table:
        keys = ("accuracy", "compression", "pareto", "plan", "seed", "test_accuracy")
        assert {k: rebuilt[r["trial_id"]][k] for k in keys} == {k: r[k] for k in keys}


def _assert_front_registered(client, config, result):
    """The front's ONNX models are the registered model's versions, ``front-k`` by compression,
    each one loadable from the registry and run by ONNX Runtime."""
    import mlflow
    import onnxruntime as ort

    name = Path(result.location).name
    front = sorted(result.front, key=lambda r: r["compression"])
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.tags["trial_id"] for v in versions) == sorted(r["trial_id"] for r in front)
    for k, r in enumerate(front, start=1):
        version = client.get_model_version_by_alias(name, f"front-{k}")
        assert version.tags["trial_id"] == r["trial_id"]
        assert float(version.tags["compression"]) == pytest.approx(r["compression"])
        path = mlflow.artifacts.download_artifacts(client.get_model_version_download_uri(name, version.version))
        session = ort.InferenceSession(str(Path(path) / "model.onnx"), providers=["CPUExecutionProvider"])
        size = config.task.image_size
        outputs = session.run(None, {"input": np.random.default_rng(0).random((2, 3, size, size), dtype=np.float32)})
        assert outputs and all(np.isfinite(o).all() for o in outputs)


@pytest.mark.slow
def test_three_objective_search_with_latency(ray_session, tiny_config):
    """search.objectives with latency: the trials report it, the front is the 3-D one, the parent's
    hypervolume is the 3-D volume, and the latency plots are drawn."""
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking import hypervolume, pareto_mask
    from tracking.mlflow_tracker import default_uri
    from tracking.objectives import maximised

    config = tiny_config(search={"objectives": ["accuracy", "compression", "latency"],
                                 "deploy": {"latency_runs": 5, "runtime": "onnxruntime"}})
    log = []
    result = run_search(config, progress=False, log=log.append)
    done = [r for r in result.rows if r["status"] == "finished"]
    assert len(done) == 2 and all(r["latency_ms"] > 0 and r["latency_provider"] == "CPUExecutionProvider" for r in done)
    assert all(r["speedup_vs_fp"] > 0 for r in done)
    points = maximised(done, config.search.objectives)
    assert [r["pareto"] for r in done] == pareto_mask(points).tolist()
    fp_latency = result.prepared.fp_metrics["latency_ms"]
    assert fp_latency > 0 and any("ms at batch 1 in CPUExecutionProvider" in line for line in log)
    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    parent = next(r for r in client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
              if r.data.tags.get("kind") == "search")
    expected = hypervolume(points, (0.0, 1.0, -2 * fp_latency))  # latency's reference: twice the FP model's
    assert parent.data.metrics["hypervolume"] == pytest.approx(expected)
    assert (result.path / "pareto_latency.png").stat().st_size > 10_000
    assert json.loads((result.path / "task.json").read_text())["objectives"] == ["accuracy", "compression", "latency"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["uniform", "ilp-only"])
def test_baselines_run_in_the_same_machinery(ray_session, tiny_config, method):
    from search.run import run_search

    config = tiny_config(search={"method": method, "sampler": "random", "targets": [4, 8]})
    result = run_search(config, progress=False, log=lambda *_: None)
    assert len(result.rows) == 2 and all(r["status"] == "finished" for r in result.rows)
    for r in result.rows:
        bits = json.loads(r["plan"])["weight_bits"]
        assert r["order"] == "uniform" and not r["ema"] and not r["qc"]
        stages = [rep.get("stage_name", rep.get("name")) for rep in _reports(r["path"])]
        assert stages == ["uniform", "final"]               # every module at once
        if method == "uniform":
            assert len(set(bits.values())) == 1
        else:
            assert bits in [dict(p.weight_bits) for p in result.prepared.plans.values()]


@pytest.mark.slow
def test_random_search_baseline_runs_without_ilp_seeds(ray_session, tiny_config):
    from search.run import run_search

    config = tiny_config(search={"sampler": "random", "ilp_seeds": False})
    result = run_search(config, progress=False, log=lambda *_: None)
    assert result.prepared.seeds == [] and not any(r["ilp_seed"] for r in result.rows)
    assert len(result.rows) == 2 and all(r["status"] == "finished" for r in result.rows)


@pytest.mark.slow
def test_the_same_search_seed_trains_the_same_trials(ray_session, tiny_config):
    """Two searches with one seed: the same configurations, and each trains the same model (a
    continuous metric, keypoint error in pixels, is compared, not only ADD-0.1d)."""
    from search.run import run_search

    def outcomes():
        result = run_search(tiny_config(), progress=False, log=lambda *_: None)
        return {r["seed"]: (r["plan"], r["order"], r["accuracy"], _reports(r["path"])[-1]["metric/kp_err_px"])
                for r in result.rows}

    first, second = outcomes(), outcomes()
    assert len(first) == 2 and first == second


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["gp", "ilp"])
def test_a_search_runs_given_points_and_a_sampler_after_them(ray_session, tiny_config, sampler):
    """``points`` (a benchmark's grid, the joint flow among its orders) run first, in place of the
    ILP seeds; Optuna's GP sampler, or the ILP-guided one, proposes the rest."""
    from search.run import run_search

    config = tiny_config(search={"sampler": sampler, "num_samples": 3, "deploy": {"onnx": False}},
                         space={"joint": True, "ema": False, "qc": False, "bn": True, "granularity": "module"})
    points = [{"order": "uniform", "bits_backbone": 8, "bits_fpn": 4, "bits_head": 2, "lr": 1e-4},
              {"order": "head>fpn>backbone", "bits_backbone": 2, "bits_fpn": 3, "bits_head": 4, "lr": 2e-4}]
    result = run_search(config, progress=False, log=lambda *_: None, points=points)
    assert len(result.rows) == 3 and all(r["status"] == "finished" for r in result.rows)
    ran = {(r["order"], r["plan"]) for r in result.rows}
    for p in points:
        plan = json.dumps({"act_bits": 8, "weight_bits": {m: p[f"bits_{m}"] for m in ("backbone", "fpn", "head")}})
        assert (p["order"], plan) in ran
    joint = next(r for r in result.rows if r["order"] == "uniform")
    assert next(x["name"] for x in _reports(joint["path"]) if not x.get("final")) == "uniform"  # one stage, all modules
