"""A trial's export timed with the FP model's, in one process and one set of runs."""
import torch

import mqat
from trainables.deploy import DeploySettings, export_and_time


def test_each_trial_times_the_fp_model_beside_its_own_export_which_is_exported_once(tiny_task, tmp_path):
    """The FP model is exported once per process, but timed again with every trial's export (its
    runs interleaved with the trial's): a figure timed once per worker made the quickstart print
    x FP 2.4-3.0 for the trials of a worker whose FP timing met a busy moment."""
    model = tiny_task.build_model().eval()
    plan = mqat.BitPlan(dict.fromkeys(tiny_task.module_map.names, 4), act_bits=8)
    quantized = mqat.quantize_(tiny_task.build_model(), plan, tiny_task.module_map)
    torch.manual_seed(0)
    mqat.calibrate(quantized, [torch.rand(4, 3, 64, 64)])
    quantized.eval()
    built = []

    def fp_model():
        built.append(1)
        return model

    settings = DeploySettings(latency_batch=2, latency_runs=3)
    found = []
    for k in range(2):
        (tmp_path / str(k)).mkdir()
        found.append(export_and_time(quantized, tiny_task, tmp_path / str(k), settings, fp_model=fp_model,
                                     fp_key="tiny-fp"))
    assert len(built) == 1                                   # exported once
    assert found[0]["fp_latency_ms"] != found[1]["fp_latency_ms"]  # timed with each trial, not cached
    for metrics in found:
        assert metrics["speedup_vs_fp"] == metrics["fp_latency_ms"] / metrics["latency_ms"]
        # the default runtime, auto: OpenVINO on a CPU where it is installed (the set-up installs it)
        assert metrics["speedup_vs_fp_batch"] > 0 and metrics["latency_provider"].startswith("openvino:CPU (")
