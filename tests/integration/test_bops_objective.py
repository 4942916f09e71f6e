"""The BOPs objective, one entry in ``tracking.objectives``: a three-objective search runs with it."""
import json

import pytest


@pytest.mark.slow
def test_three_objective_search_with_bops(ray_session, tiny_config):
    from mlflow import MlflowClient

    from search.run import run_search
    from tracking import hypervolume, pareto_mask
    from tracking.mlflow_tracker import default_uri
    from tracking.objectives import maximised

    config = tiny_config(search={"objectives": ["accuracy", "compression", "bops"], "deploy": {"onnx": False}})
    log = []
    result = run_search(config, progress=False, log=log.append)
    done = [r for r in result.rows if r["status"] == "finished"]
    fp_bops = result.prepared.fp_metrics["bops"]
    assert len(done) == 2 and all(0 < r["bops"] < fp_bops for r in done)
    # more compression, fewer bit operations (the two ILP plans differ in bits)
    low, high = sorted(done, key=lambda r: r["compression"])
    assert high["bops"] < low["bops"]
    points = maximised(done, config.search.objectives)
    assert points[:, 2].tolist() == [-r["bops"] for r in done]
    assert [r["pareto"] for r in done] == pareto_mask(points).tolist()
    assert any("BOPs" in line and "front" in line for line in log)
    client = MlflowClient(tracking_uri=default_uri(config.output_dir))
    parent = next(r for r in client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
              if r.data.tags.get("kind") == "search")
    assert parent.data.metrics["hypervolume"] == pytest.approx(hypervolume(points, (0.0, 1.0, -fp_bops)))
    assert (result.path / "pareto_bops.png").stat().st_size > 10_000
    assert json.loads((result.path / "task.json").read_text())["objectives"] == ["accuracy", "compression", "bops"]
