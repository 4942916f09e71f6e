"""The peers section: budget mapping (pure), the peers' layer names, the worker's hand-off, the rows
(a missing venv among them), and, slow, the mqat arm's plans trained on the tiny task."""
from __future__ import annotations

import json
import re
from collections import namedtuple
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import mqat
from bench import peers
from bench.peers import budgets, modelopt_worker, nncf_worker, rows, venvs, worker
from bench.peers.budgets import Candidate
from bench.peers.request import Request, load, save

COUNTS = {"a": 1000, "b": 3000, "c": 500}


# --- budgets ----------------------------------------------------------------------------------------------------

def test_compression_is_the_projects_measure_of_a_per_layer_plan():
    net = nn.Module()
    net.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 1), nn.Linear(16, 4))
    layer_map = mqat.grouped(net, mqat.ModuleMap({"body": ["body."]}, fp_first_last=True), "layer")
    counts = {"body.1": net.body[1].weight.numel(), "body.2": net.body[2].weight.numel()}
    fp = net.body[0].weight.numel() + net.body[3].weight.numel()
    bits = {"body.1": 3, "body.2": 6}
    plan = mqat.BitPlan({layer_map.unit_of(n): b for n, b in bits.items()}, act_bits=8)
    assert budgets.compression(bits, counts, fp) == pytest.approx(mqat.model_size(net, plan, layer_map).compression)
    assert budgets.compression({"a": 8, "b": 8, "c": 8}, COUNTS) == pytest.approx(4.0)


def test_compression_refuses_a_plan_missing_a_layer():
    with pytest.raises(ValueError, match=r"no bit-width for layer\(s\) \['c'\]"):
        budgets.compression({"a": 4, "b": 4}, COUNTS)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_modelopt_effective_bits_lands_on_the_target(bits):
    """A uniform plan's compression, converted, is ModelOpt's own average with FP layers at 16 bits."""
    n, fp = sum(COUNTS.values()), 700
    target = budgets.compression(dict.fromkeys(COUNTS, bits), COUNTS, fp)
    assert budgets.modelopt_effective_bits(target, n, fp) == pytest.approx((bits * n + 16 * fp) / (n + fp))
    assert budgets.modelopt_effective_bits(target, n, 0) != pytest.approx(bits)  # leaving F out would ask for other bits
    assert budgets.modelopt_effective_bits(8, n, 0) == pytest.approx(4.0)


def test_modelopt_effective_bits_refuses_a_target_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        budgets.modelopt_effective_bits(0.5, 100, 0)


def _candidate(ratio, metric, a, b, c):
    return Candidate(ratio, metric, {"a": a, "b": b, "c": c})


CANDIDATES = [
    _candidate(1.0, 0.0, 8, 8, 8),  # 4.0x
    _candidate(1.5, 0.3, 4, 8, 8),  # FLOPs-heavy 'a' cut: a high ratio, little weight compression (4.5x)
    _candidate(1.2, 0.2, 8, 4, 8),  # weight-heavy 'b' cut: a low ratio, much weight compression (6.0x)
    _candidate(1.5, 0.5, 8, 4, 4),  # 6.5x
    _candidate(2.0, 0.9, 4, 4, 4),  # 8.0x
]


@pytest.mark.parametrize("ratio, index", [(1.0, 0), (1.1, 2), (1.2, 2), (1.3, 1), (1.5, 1), (1.9, 4), (2.0, 4)])
def test_hawq_choice_is_the_least_metric_at_or_above_the_ratio(ratio, index):
    assert budgets.hawq_choice(CANDIDATES, ratio) == index


def test_hawq_choice_breaks_a_tie_by_the_first_and_refuses_an_unreachable_ratio():
    tied = [_candidate(2.0, 0.1, 4, 4, 4), _candidate(2.0, 0.1, 2, 2, 2)]
    assert budgets.hawq_choice(tied, 1.0) == 0
    with pytest.raises(ValueError, match="highest is 2"):
        budgets.hawq_choice(tied, 2.5)


def test_hawq_plans_map_each_target_by_where_hawqs_choice_lands_in_weights():
    picked = budgets.hawq_plans(CANDIDATES, COUNTS, 0, [4, 6, 8])
    landed = {t: budgets.compression(CANDIDATES[i].bits, COUNTS) for t, (_r, i) in picked.items()}
    assert picked == {4: (1.0, 0), 6: (1.2, 2), 8: (2.0, 4)}  # 6x at the low ratio 1.2; 1.5 gives HAWQ's 4.5x
    assert landed == pytest.approx({4: 4.0, 6: 6.0, 8: 8.0})
    for ratio, index in picked.values():
        assert budgets.hawq_choice(CANDIDATES, ratio) == index  # what HAWQ itself picks at that ratio


# --- the peers' names and results -------------------------------------------------------------------------------

def test_nncf_node_names_become_the_projects_layer_names_and_back():
    node = "PoseNet/Backbone[backbone]/Sequential[stem]/NNCFConv2d[0]/conv2d_0"
    assert nncf_worker.layer_name(node) == "backbone.stem.0"
    pattern = nncf_worker.scope_regex("backbone.stem.0")
    assert pattern.startswith("{re}")
    assert re.search(pattern[4:], node)
    assert not re.search(pattern[4:], node.replace("NNCFConv2d[0]", "NNCFConv2d[01]"))
    assert not re.search(pattern[4:], node.replace("[stem]", "[stages]"))


def test_nncf_candidates_carry_bits_in_execution_order_under_layer_names():
    node = namedtuple("WeightQuantizerId", "target_node_name")
    ids = [node(f"Net/Sequential[body]/NNCFConv2d[{i}]/conv2d_0") for i in range(3)]
    order = SimpleNamespace(get_execution_order_configs=lambda seq: list(reversed(seq)))  # traces order reversed
    seen = {"initializer": SimpleNamespace(_weight_quantizations_by_execution_order=dict.fromkeys(ids)),
            "order": order, "sequences": [[SimpleNamespace(num_bits=b) for b in (2, 4, 8)]],
            "ratios": [1.7], "metrics": [0.25]}
    (candidate,) = nncf_worker.candidates(seen)
    assert candidate == Candidate(1.7, 0.25, {"body.0": 8, "body.1": 4, "body.2": 2})


def test_modelopt_bits_read_from_its_quantizers():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.ReLU())
    net[0].weight_quantizer = SimpleNamespace(num_bits=3, is_enabled=True)
    net[1].weight_quantizer = SimpleNamespace(num_bits=8, is_enabled=False)
    assert modelopt_worker.weight_bits(net) == {"0": 3, "1": 32}
    assert modelopt_worker.int_format(6)["quant_cfg"][0]["cfg"] == {"num_bits": 6, "axis": 0}


def test_the_task_loss_on_outputs_a_peer_computed():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    task = SimpleNamespace(loss_fn=lambda model, batch: ((model(batch[0]) - batch[1]) ** 2).mean())
    batch = (torch.randn(5, 3), torch.randn(5, 2))
    assert worker.output_loss(task)(net(batch[0]), batch).item() == pytest.approx(task.loss_fn(net, batch).item())


def test_a_workers_result_line_is_found_among_its_logs(capsys):
    worker.emit("p", "1.0", {4.0: {"bits": {"a": 4}}}, 1.234, candidates=3)
    out = "INFO: starting\n" + capsys.readouterr().out + "INFO: done\n"
    assert venvs.parse(out) == {"peer": "p", "version": "1.0", "choose_s": 1.23, "plans": {"4.0": {"bits": {"a": 4}}},
                                "candidates": 3}
    with pytest.raises(ValueError, match="no result line"):
        venvs.parse("INFO: crashed\n")


def _fake_venv(root, script: str):
    python = root / "fake" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + script)
    python.chmod(0o755)
    return venvs.Peer("fake-arm", "fake", "any.module")


def test_a_worker_runs_in_the_requests_folder_and_its_failure_says_why(tmp_path):
    """In the request's folder (NNCF writes files where it runs), the result parsed, wall time added."""
    (tmp_path / "job").mkdir()
    request = tmp_path / "job" / "request.pt"
    peer = _fake_venv(tmp_path / "ok", r'echo "INFO: log"; echo "PEER-RESULT {\"cwd\": \"$(pwd)\", \"args\": \"$*\"}"')
    result = venvs.run_worker(peer, request, timeout=30, venvs=tmp_path / "ok")
    assert result["cwd"] == str(request.parent) and result["args"] == f"-m any.module {request}"
    assert result["wall_s"] >= 0
    peer = _fake_venv(tmp_path / "bad", 'echo "Traceback: InternalError: not wrapped" >&2; exit 3')
    with pytest.raises(RuntimeError, match="fake-arm worker exited 3: Traceback: InternalError: not wrapped"):
        venvs.run_worker(peer, request, timeout=30, venvs=tmp_path / "bad")


def test_a_request_round_trips_with_the_tasks_own_config(tmp_path):
    from trainables.pose.config import PoseConfig

    request = Request("pose", PoseConfig(), "data", {"w": torch.ones(2)}, {"a": 9}, {"b": 3}, (2, 4, 8), (4, 8.5), 8)
    back = load(save(request, tmp_path / "r.pt"))
    assert isinstance(back.task_config, PoseConfig) and back.task_config == request.task_config
    assert back.targets == (4, 8.5) and back.layers == {"a": 9} and torch.equal(back.fp_state["w"], torch.ones(2))


def test_every_task_config_gives_bits_per_layer_and_runs_no_search():
    from pathlib import Path

    from bench.peers.tasks import TASKS, config_data

    for name in TASKS:
        data = config_data(name, False)
        assert data["space"]["granularity"] == "layer" and data["tracking"] == {"enabled": False}
        assert Path(data["cache_dir"]).is_absolute() and "scheduler" not in data["search"]
    assert config_data("pose", True)["task"]["image_size"] == 64  # --quick: the tiny pose task


# --- rows -------------------------------------------------------------------------------------------------------

def test_a_missing_peer_venv_is_a_row_saying_how_to_make_it(tmp_path):
    (tmp_path / "nncf" / "bin").mkdir(parents=True)
    (tmp_path / "nncf" / "bin" / "python").write_text("")
    have, missing = venvs.available(venvs=tmp_path)
    assert [p.arm for p in have] == ["nncf-hawq"] and [p.arm for p in missing] == ["modelopt-autoquant"]
    row = rows.missing_row("modelopt-autoquant", tmp_path / "modelopt")
    assert row["section"] == "peers" and row["value"] is None and "make peers" in row["note"]


def test_the_section_goes_on_without_peer_venvs(monkeypatch, tmp_path):
    """No venv: a row per peer, then every arm's rows, the hypervolumes and the dominance counts
    (choice, training and the search faked; a stand-in peer beside the mqat arm)."""
    import bench.peers.choose
    import bench.peers.plot
    import bench.peers.search_arm
    import bench.peers.training

    monkeypatch.setattr(venvs, "VENVS", tmp_path)
    monkeypatch.setattr(bench.peers.choose, "choose_all", lambda task, quick, have, targets: (
        ({arm: {"plans": {t: {"bits": {"a": 4}} for t in targets}, "choose_s": 1.0} for arm in ("mqat-ilp", "peer")},
         []) if not have
        else pytest.fail("no peer should run")))

    def trained(task, quick, choices, seeds):
        return [rows.run_row(task, arm, t, s, c, {"accuracy": 0.5 + t / 100, "accuracy_se": 0.01, "compression": t,
                                                  "bytes": 10, "train_s": 1.0, "trained_images": 96})
                for arm, c in choices.items() for t in c["plans"] for s in seeds]

    def searched(task, quick, targets, seeds):  # a search's front: 0.64 at 8x beats the ILP arm's 0.58 there
        trials = [{"trial_id": "t0", "status": "finished", "pareto": True, "compression": 8.0, "test_accuracy": 0.64,
                   "test_accuracy_se": 0.01, "model_bytes": 10},
                  {"trial_id": "t1", "status": "failed", "pareto": False, "compression": None}]
        return rows.front_rows(task, "mqat-search (equal compute)", 0, trials, 12.0, 96)

    monkeypatch.setattr(bench.peers.training, "train_all", trained)
    monkeypatch.setattr(bench.peers.search_arm, "run_searches", searched)
    monkeypatch.setattr(bench.peers.plot, "OUT", tmp_path / "plots")
    out = peers.run(settings=peers.Settings(tasks=("pose",), targets=(4, 8), seeds=(0,)))
    assert [r["what"] for r in out[:2]] == ["nncf-hawq: not run", "modelopt-autoquant: not run"]
    assert [r["what"] for r in out[2:]] == ["pose mqat-ilp 4x seed 0: test accuracy",
                                            "pose mqat-ilp 8x seed 0: test accuracy",
                                            "pose peer 4x seed 0: test accuracy",
                                            "pose peer 8x seed 0: test accuracy",
                                            "pose mqat-search (equal compute) seed 0: test accuracy",
                                            "pose mqat-search (equal compute) seed 0: compute",
                                            "pose mqat-ilp seed 0: hypervolume",
                                            "pose peer seed 0: hypervolume",
                                            "pose mqat-search (equal compute) seed 0: hypervolume",
                                            "pose mqat-search (equal compute) dominates peer",
                                            "pose mqat-ilp dominates peer"]
    by_what = {r["what"]: r for r in out}
    assert by_what["pose mqat-ilp seed 0: hypervolume"]["value"] == pytest.approx(0.58 * 7)  # (0.54, 4x) dominated
    assert by_what["pose mqat-search (equal compute) seed 0: compute"]["value"] == 96  # one finished trial
    duel = by_what["pose mqat-search (equal compute) dominates peer"]
    assert (duel["dominated"], duel["of"], duel["lost"], duel["of_ours"]) == (2, 2, 0, 1)
    duel = by_what["pose mqat-ilp dominates peer"]  # the same points: each side's 8x dominates the other's 4x
    assert (duel["dominated"], duel["of"], duel["lost"], duel["of_ours"]) == (1, 2, 1, 2)
    assert (tmp_path / "plots" / "pose.png").stat().st_size > 0
    json.dumps(out, default=str)  # what bench/results.json holds


def test_hypervolume_is_per_task_arm_and_seed():
    def r(arm, seed, accuracy, compression):
        return {"task": "pose", "arm": arm, "seed": seed, "value": accuracy, "compression": compression}

    out = rows.hypervolume_rows([r("x", 0, 0.5, 4), r("x", 0, 0.4, 8), r("x", 1, 0.5, 4), r("y", 0, 0.1, 2)])
    volumes = {(o["arm"], o["seed"]): o["value"] for o in out}
    assert volumes == pytest.approx({("x", 0): 0.5 * 3 + 0.4 * 4, ("x", 1): 0.5 * 3, ("y", 0): 0.1 * 1})


def _point(arm, seed, accuracy, compression, se=0.01):
    return {"task": "pose", "arm": arm, "seed": seed, "value": accuracy, "compression": compression, "accuracy_se": se}


def test_dominance_needs_more_compression_and_over_two_standard_errors_within_a_seed():
    assert rows.dominates(_point("a", 0, 0.50, 8), _point("b", 0, 0.47, 8))  # 0.03 > 2 * 0.0141
    assert not rows.dominates(_point("a", 0, 0.50, 8), _point("b", 0, 0.48, 8))  # 0.02 < 0.028: within noise
    assert not rows.dominates(_point("a", 0, 0.60, 7.9), _point("b", 0, 0.40, 8))  # less compressed
    found = [_point("ours", 0, 0.50, 8), _point("peer", 0, 0.40, 6), _point("peer", 0, 0.55, 12),
             _point("peer", 1, 0.10, 4),  # a seed ours never ran: not counted
             {"task": "pose", "arm": "peer", "seed": 0, "value": 3.0}]  # a hypervolume row: no point
    (duel,) = rows.dominance_rows(found, ours=("ours", "absent"))
    assert (duel["arm"], duel["other"], duel["dominated"], duel["of"], duel["lost"], duel["of_ours"]) == \
        ("ours", "peer", 1, 2, 1, 1)


def test_a_searchs_front_rows_are_its_test_scores_and_its_compute_counts_finished_trials():
    trials = [{"trial_id": "b", "status": "finished", "pareto": True, "compression": 12.0, "test_accuracy": 0.4,
               "test_accuracy_se": 0.02, "model_bytes": 5, "speedup_vs_fp": 1.3},
              {"trial_id": "a", "status": "finished", "pareto": True, "compression": 4.0, "test_accuracy": 0.5,
               "test_accuracy_se": 0.02, "model_bytes": 9},
              {"trial_id": "c", "status": "finished", "pareto": False, "compression": 6.0, "test_accuracy": None},
              {"trial_id": "d", "status": "failed", "pareto": False, "compression": None}]
    out = rows.front_rows("pose", "s", 2, trials, 30.0, 100)
    assert [(r["trial"], r["value"], r["compression"]) for r in out[:2]] == [("a", 0.5, 4.0), ("b", 0.4, 12.0)]
    assert "x FP 1.30" in out[1]["note"] and out[1]["speedup_vs_fp"] == 1.3
    assert (out[2]["value"], out[2]["trials"], out[2]["wall_s"]) == (300, 4, 30.0)


def test_a_search_arm_asks_for_the_peers_targets_and_its_seed_at_either_budget():
    from bench.peers import search_arm, tasks

    equal = search_arm.search_config("pose", True, 2, (4, 6), 2)
    default = search_arm.search_config("pose", True, 2, (4, 6), None)
    assert (equal.search.seed, list(equal.search.targets), equal.search.num_samples) == (2, [4, 6], 2)
    assert default.search.num_samples == tasks.TASKS["pose"](True).get("search", {}).get(
        "num_samples", type(default.search)().num_samples)
    assert equal.name != default.name and not equal.tracking.enabled


# --- slow: the mqat arm on the tiny task, trained as every arm is ------------------------------------------------

@pytest.mark.slow
def test_the_mqat_arm_plans_meet_their_targets_and_train_to_the_same_accounting():
    from bench.peers import mqat_arm, tasks, train

    ctx = tasks.context("pose", True)
    choice = mqat_arm.choose(ctx, (4, 8))
    fp = sum(ctx.fp_layers.values())
    for target, plan in choice["plans"].items():
        assert set(plan["bits"]) == set(ctx.layers)
        assert target <= budgets.compression(plan["bits"], ctx.layers, fp) <= target + plan["setting"]["window"] + 1e-9
    bits = choice["plans"][8]["bits"]
    result = train.train("pose", True, bits, 0)
    assert result["compression"] == pytest.approx(budgets.compression(bits, ctx.layers, fp))
    assert 0 <= result["accuracy"] <= 1 and result["accuracy_se"] >= 0
    assert result["trained_images"] == train.epochs(ctx) * ctx.config.search.stage.images_per_epoch


def test_the_summary_gives_each_targets_spread_over_seeds_and_each_arms_hypervolume():
    from bench.peers.summary import summary

    choice = {"plans": {4.0: {"bits": {"a": 8}}}, "choose_s": 3.0}
    trained = [rows.run_row("pose", "peer", 4.0, seed, choice, {"accuracy": accuracy, "accuracy_se": 0.01,
                                                                 "compression": 4.1, "bytes": 10, "train_s": 2.0,
                                                                 "trained_images": 96, "speedup_vs_fp": 1.2})
               for seed, accuracy in ((0, 0.40), (1, 0.44))]
    text = summary(trained + rows.hypervolume_rows(trained))
    assert "0.420 +- 0.028" in text                                    # the mean and sd of 0.40 and 0.44
    assert "peer per seed: trained 96 images in 2 s, chose every target's bits in 3 s" in " ".join(text.split())
    assert "hypervolume 1.302 +- 0.088 over 2 seeds" in text          # 0.40 x 3.1 and 0.44 x 3.1


def test_a_missing_or_broken_rows_file_for_the_summary_is_one_error_and_exit_2(tmp_path, capsys):
    from bench.peers.__main__ import main

    (tmp_path / "broken.jsonl").write_text("{not json\n")
    for path in (tmp_path / "missing.jsonl", tmp_path / "broken.jsonl"):
        with pytest.raises(SystemExit) as exit_:
            main(["--summary", str(path)])
        assert exit_.value.code == 2 and f"--summary {path}:" in capsys.readouterr().err
