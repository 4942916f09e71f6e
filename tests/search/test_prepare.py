from types import SimpleNamespace

from search.prepare import format_pretrain


def _metrics(**extra):
    m = {"accuracy": 0.8, "accuracy_se": 0.01, "add_01d": 0.3, "adds_01d": 0.8, "add_01d_near": 0.4,
         "adds_01d_near": 0.9, "images": 500.0, "add_auc": 0.2, "rot_err_deg_median": 3.0,
         "trans_err_cm_median": 1.0, "kp_err_px": 1.5, "baseline_accuracy": 0.05,
         "data_seconds": 1.0, "train_seconds": 2.0}
    return {**m, **extra}


def test_the_fp_summary_names_the_metric_that_ranks():
    result = SimpleNamespace(metrics=_metrics(accuracy_is_adds=1.0), checkpoint="fp.pt", cached=True)
    first = format_pretrain(result, None).splitlines()[0]
    assert first.startswith("FP model: ADD-S-0.1d 0.800 +- 0.010") and "near 0.900" in first
    assert "mean-pose baseline: ADD-S-0.1d 0.050" in format_pretrain(result, None)
    plain = SimpleNamespace(metrics=_metrics(accuracy=0.3, accuracy_is_adds=0.0), checkpoint="fp.pt", cached=True)
    first = format_pretrain(plain, None).splitlines()[0]
    assert first.startswith("FP model: ADD-0.1d 0.300") and "near 0.400" in first
