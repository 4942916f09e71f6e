"""search.budget_trials: the stage count that ends a search."""
import pytest

from search.budget import StageBudget


def test_the_budget_ends_after_the_last_trial_reports_its_final():
    budget = StageBudget(trials=2, stages_per_trial=3)
    for trial in ("a", "b"):
        for stage in range(3):
            assert budget(trial, {"stage": stage, "final": False}) is False
            if trial == "a":
                assert not budget.stop_all()
        if trial == "a":
            budget(trial, {"stage": 3, "final": True})
    assert budget.used == 6 and not budget.stop_all()    # b has trained all its stages: it finishes
    budget("b", {"stage": 3, "name": "qc", "final": False})   # QC is not a module stage
    assert budget.used == 6 and not budget.stop_all()
    budget("b", {"stage": 4, "final": True})
    assert budget.stop_all()


def test_a_trial_that_never_reports_its_final_blocks_at_most_one_trial_of_stages():
    budget = StageBudget(trials=1, stages_per_trial=2)
    budget("a", {"stage": 0})
    budget("a", {"stage": 1})                 # then a fails: no final report
    assert not budget.stop_all()
    budget("b", {"stage": 0})
    budget("b", {"stage": 1})
    assert budget.stop_all()


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="trials > 0"):
        StageBudget(trials=0, stages_per_trial=3)


def test_a_resumed_budget_counts_the_stages_already_trained(tmp_path):
    """Tune restores the stopper as pickled at the start; it reads what the trials reported."""
    import json
    import pickle

    budget = StageBudget(trials=2, stages_per_trial=3, experiment=tmp_path)
    fresh = pickle.dumps(budget)                              # as tuner.pkl holds it
    reports = {"a": [{"stage": s, "final": False} for s in range(3)] + [{"stage": 3, "final": True}],
               "b": [{"stage": 0, "final": False}, {"stage": 1, "final": False}, {"stage": 1, "final": False}]}
    for trial, lines in reports.items():
        (tmp_path / f"train_mqat_{trial}").mkdir()
        text = "".join(json.dumps({**r, "trial_id": trial}) + "\n" for r in lines)
        (tmp_path / f"train_mqat_{trial}" / "result.json").write_text(text + '{"stage": 2, "tri')  # a torn line
    resumed = pickle.loads(fresh)
    assert resumed.used == 5                                   # a: 3 stages, b: 2 (stage 1 rerun, once)
    resumed("b", {"stage": 2, "final": False})
    assert resumed.used == 6 and not resumed.stop_all()       # b owes its final report
    resumed("b", {"stage": 3, "final": True})
    assert resumed.stop_all()
