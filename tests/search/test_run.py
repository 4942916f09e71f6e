"""The driver's checks before a search starts (without Ray): which search --resume picks, the
directories a search writes, the resources a trial asks for, and the watch on trials that never
start."""
from __future__ import annotations

import os
from dataclasses import replace
from types import SimpleNamespace

import pytest

from search import resources
from search.config import ConfigError, config_from_dict, merge
from search.locations import latest_experiment
from search.watch import PendingWatch, SearchStalled
from tests.integration.conftest import TINY


def _config(tmp_path, **search):
    return config_from_dict(merge(TINY, {"search": search, "cache_dir": str(tmp_path / "cache"),
                                         "output_dir": str(tmp_path / "out")}))


def test_resume_picks_only_searches_of_exactly_this_name(tmp_path):
    config = _config(tmp_path, storage={"path": str(tmp_path / "ray")})
    for name in ("tiny-20261121-090000", "tiny-gpu-20261122-090000", "tiny-20261123-090000-old",
                 "tiny-x", "tinyer-20261124-090000"):
        (tmp_path / "ray" / name).mkdir(parents=True)
    assert latest_experiment(config) == str(tmp_path / "ray" / "tiny-20261121-090000")
    (tmp_path / "ray" / "tiny-20261121-090000").rmdir()
    with pytest.raises(ConfigError, match="nothing to resume"):
        latest_experiment(config)


@pytest.mark.parametrize("where, match", [
    ("/proc/forbidden/out", "output_dir '/proc/forbidden/out' cannot be written"),
    ("{tmp}/file/out", "is not a directory"),
])
def test_an_unwritable_output_dir_is_refused(tmp_path, where, match):
    (tmp_path / "file").write_text("a file, not a directory")
    config = replace(_config(tmp_path), output_dir=where.format(tmp=tmp_path))
    with pytest.raises(ConfigError, match=match):
        resources.check_writable(config)


def test_a_writable_output_dir_passes_and_nothing_is_created(tmp_path):
    config = replace(_config(tmp_path, storage={"path": str(tmp_path / "a" / "ray")}),
                     output_dir=str(tmp_path / "a" / "b" / "out"))
    resources.check_writable(config)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_trial_larger_than_this_machine_is_refused(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cpus = os.cpu_count()
    resources.check_local_resources(_config(tmp_path, resources={"cpus_per_trial": float(cpus)}))
    with pytest.raises(ConfigError, match=f"asks for {cpus + 1} CPUs and 0 GPUs, but this machine "
                                          f"has {cpus} CPUs and 0 GPUs: lower search.resources.cpus_per_trial"):
        resources.check_local_resources(_config(tmp_path, resources={"cpus_per_trial": cpus + 1.0}))
    with pytest.raises(ConfigError, match="asks for 1 CPUs and 0.5 GPUs, but this machine has"):
        resources.check_local_resources(_config(tmp_path, resources={"gpus_per_trial": 0.5}))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    resources.check_local_resources(_config(tmp_path, resources={"gpus_per_trial": 0.5}))


def _nodes(monkeypatch, nodes, launcher=None, tmp_path=None):
    import ray

    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    path = tmp_path / "bootstrap.yaml"
    if launcher is not None:
        import yaml
        path.write_text(yaml.safe_dump({"available_node_types": launcher}))
    monkeypatch.setattr(resources, "LAUNCHER_CONFIG", str(path))


def test_a_cluster_is_checked_against_its_largest_node(tmp_path, monkeypatch):
    _nodes(monkeypatch, [{"Alive": True, "Resources": {"CPU": 4.0}},
                         {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}},
                         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}], tmp_path=tmp_path)
    resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 2.0, "gpus_per_trial": 1.0}))
    resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 4.0}))
    with pytest.raises(ConfigError, match=r"asks for 4 CPUs and 1 GPUs, but no node of the Ray cluster "
                                          r"has that much \(at most 4 CPUs and 1 GPUs on one of its 2 nodes\)"):
        resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 4.0, "gpus_per_trial": 1.0}))


def test_an_autoscaling_cluster_is_checked_against_its_node_types(tmp_path, monkeypatch):
    head = {"Alive": True, "Resources": {"CPU": 0.0}}  # as cluster.yaml starts it: no worker yet
    _nodes(monkeypatch, [head], {"head": {"resources": {"CPU": 0}},
                                 "gpu": {"resources": {"CPU": 4, "GPU": 1}}}, tmp_path)
    resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 3.0, "gpus_per_trial": 1.0}))
    with pytest.raises(ConfigError, match="no node of the Ray cluster has that much"):
        resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 3.0, "gpus_per_trial": 2.0}))
    # resources left to be detected on the node: only the autoscaler knows; the watch bounds it
    _nodes(monkeypatch, [head], {"head": {"resources": {"CPU": 0}}, "gpu": {"resources": {}}}, tmp_path)
    resources.check_cluster_resources(_config(tmp_path, resources={"cpus_per_trial": 3.0, "gpus_per_trial": 2.0}))


def _trial(trial_id, status):
    return SimpleNamespace(trial_id=trial_id, status=status,
                           placement_group_factory=SimpleNamespace(required_resources={"CPU": 8.0}))


def test_the_watch_fails_a_search_whose_trials_wait_while_none_runs():
    now = [0.0]
    watch = PendingWatch(60, clock=lambda: now[0])
    watch.setup()
    queued = [_trial("a", "RUNNING"), _trial("b", "PENDING")]
    stuck = [_trial("a", "TERMINATED"), _trial("b", "PENDING")]
    for step in range(10):  # a trial queued behind a running one is not a stall
        now[0] = step * 100.0
        watch.on_step_end(step, queued)
    watch.on_step_end(10, stuck)
    now[0] += 60
    watch.on_step_end(11, stuck)
    watch.on_step_end(12, queued)  # a trial ran: the wait starts again
    now[0] += 30
    watch.on_step_end(13, stuck)
    now[0] += 60.5
    with pytest.raises(SearchStalled, match=r"trial b has waited 60 s for 8 CPUs and 0 GPUs while no "
                                            r"trial ran: .*--resume \(search.pending_timeout_s: null"):
        watch.on_step_end(14, stuck)


def test_pending_timeout_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"search.pending_timeout_s must be > 0 seconds \(or null"):
        config_from_dict({**TINY, "search": {"pending_timeout_s": 0}})
    assert config_from_dict({**TINY, "search": {"pending_timeout_s": None}}).search.pending_timeout_s is None
