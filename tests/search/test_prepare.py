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
    assert lines[3] == "checkpoint: fp.pt (data 1 s, training 2 s)"
    bare = SimpleNamespace(metrics={"accuracy": 0.5, "data_seconds": 0, "train_seconds": 0}, checkpoint="fp.pt",
                           cached=True)
    assert format_pretrain(bare, Metric("top-1", "top-1")).splitlines() == ["FP model: top-1 0.500",
                                                                            "checkpoint: fp.pt (cached)"]
