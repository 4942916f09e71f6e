import subprocess
import sys


def test_import_mqat_leaves_heavy_frameworks_out():
    code = ("import sys, mqat; heavy = sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('ray', 'optuna', 'mlflow', 'pyarrow', 'sklearn')); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exported():
    import mqat
    for name in mqat.__all__:
        assert getattr(mqat, name) is not None
    for contract in ["LSQQuantizer", "QuantConv2d", "QuantLinear", "ModuleMap", "BitPlan", "quantize_",
                     "model_size", "sensitivity", "solve_bit_plan", "solve_bit_plans", "run_mqat",
                     "ModelEMA", "QCConfig", "OscillationTracker", "export_packed", "load_packed"]:
        assert contract in mqat.__all__
