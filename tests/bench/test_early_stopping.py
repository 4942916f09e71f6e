"""The early-stopping section's quick configuration."""
from bench.early_stopping import _config


def test_the_quick_run_searches_its_briefly_trained_model_on_purpose():
    """``python -m bench --quick`` stopped in this section: its three-epoch FP model (top-1 0.290
    against the baseline's 0.210) was refused by the FP check."""
    assert _config("es-quick", 0, 6, quick=True).pretrain.require_above_baseline is False
    assert _config("es-full", 0, 12, quick=False).pretrain.require_above_baseline is True
