from types import SimpleNamespace

from search.prepare import format_pretrain
from tracking.metric import Metric


def _metrics(**extra):
    m = {"accuracy": 0.8, "accuracy_se": 0.01, "images": 500.0, "map_50": 0.9, "baseline_accuracy": 0.05,
         "test_accuracy": 0.78, "data_seconds": 1.0, "train_seconds": 2.0}
    return {**m, **extra}


def test_the_fp_summary_reads_the_metric_as_the_task_describes_it():
    metric = Metric("mAP", "mAP@[.5:.95]", companions={"map_50": "mAP@.5", "absent": "not reported"})
    result = SimpleNamespace(metrics=_metrics(), checkpoint="fp.pt", cached=False)
    lines = format_pretrain(result, metric).splitlines()
    assert lines[0] == "FP model: mAP 0.800 +- 0.010 (standard error, 500 validation images); test split 0.780"
    assert lines[1].strip() == "mAP@.5 0.9"                      # a companion the task did not report is left out
    assert lines[2] == "baseline (a model that learned nothing): mAP 0.050"
    assert lines[3] == "checkpoint: fp.pt (trained now: data 1 s, training 2 s)"
    bare = SimpleNamespace(metrics={"accuracy": 0.5, "data_seconds": 0, "train_seconds": 0}, checkpoint="fp.pt",
                           cached=True)
    assert format_pretrain(bare, Metric("top-1", "top-1")).splitlines() == ["FP model: top-1 0.500",
                                                                            "checkpoint: fp.pt (cached: trained before with these settings and code)"]


def test_ilp_compression_counts_the_layers_kept_at_full_precision(tmp_path):
    """The ILP's plans and the highest compression use the compression a trial will report:
    the pose net's first and last layers stay at 32 bits whatever the plan."""
    import pytest

    import mqat
    from search.prepare import weight_counts
    from trainables.tasks import get_task

    task_class = get_task("pose")
    task = task_class(task_class.Config(), cache_dir=str(tmp_path), device="cpu", progress=False)
    model, mm = task.build_model(), task.module_map
    counts, fp = weight_counts(model, mm)
    assert fp > 0 and len(mm.fixed_fp_layers(model)) == 2
    total = sum(counts.values()) + fp
    for bits in ((2, 4, 8), (2, 2, 2), (8, 3, 6)):
        plan = mqat.BitPlan(dict(zip(mm.names, bits)))
        ilp_view = 32 * total / (sum(plan.weight_bits[m] * n for m, n in counts.items()) + 32 * fp)
        assert ilp_view == pytest.approx(mqat.model_size(model, plan, mm).compression, rel=1e-12)
    all_two = mqat.model_size(model, mqat.BitPlan(dict.fromkeys(mm.names, 2)), mm).compression
    assert mqat.max_compression(counts, [2, 4, 8], fp_weights=fp) == pytest.approx(all_two, rel=1e-12)
    table = {m: {b: float(8 - b) for b in (2, 3, 4, 6, 8)} for m in mm.names}
    plan = mqat.solve_bit_plan(table, counts, target_compression=8, fp_weights=fp)
    assert mqat.model_size(model, plan, mm).compression >= 8   # the target, as the trial will measure it
