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
