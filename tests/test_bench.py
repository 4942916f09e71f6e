"""The benchmark command runs (quick mode, the fast sections) and writes its table: this checks
behaviour and numerics, not timings."""
import json
import os
import subprocess
import sys

import pytest
import torch


def test_bench_quick_kernel_and_step_write_results(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "kernel,step",
                             "--output", str(out)], check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    kernel = [r for r in rows if r["section"] == "kernel" and r.get("numerics")]
    devices = 2 if torch.cuda.is_available() else 1  # the bench adds CUDA rows where it can
    assert len(kernel) == 2 * devices and all(r["numerics"] == "forward bit-identical, gradients equal" for r in kernel)
    assert {r["section"] for r in rows} == {"kernel", "qat step"}
    assert all(r["value"] > 0 for r in rows if r["value"] is not None)
    assert "mqat W4/A8 step (fused LSQ)" in result.stdout


def test_bench_refuses_an_unknown_section(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--only", "kernal", "--output",
                             str(tmp_path / "r.json")], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown section" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_bench_quick_deploy_times_fp_and_each_plan_in_both_layouts_and_runtimes(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "deploy", "--output", str(out)],
                            check=False, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {r["runtime"] for r in rows} == {"onnxruntime", "openvino"} and {r["batch"] for r in rows} == {1, 8}
    for runtime in ("onnxruntime", "openvino"):
        for batch in (1, 8):
            cell = {r["what"].split(": ", 1)[1]: r for r in rows
                    if r["runtime"] == runtime and r["batch"] == batch and not r.get("ceiling")}
            # FP, 4 plans x 2 layouts, and each plan in the speed layout with one input quantizer per
            # shared tensor; in OpenVINO also its FP model with the floats in f32 (its default is bf16
            # on CPUs that have it), and every model's ratio to that one
            f32 = runtime == "openvino"
            assert len(cell) == 13 + f32 and cell["FP (ms)"]["ratio"] == 1.0
            assert "W8-8-8 speed shared (ms)" in cell
            for r in cell.values():
                assert r["value"] > 0 and abs(r["ratio"] - cell["FP (ms)"]["value"] / r["value"]) < 1e-9
                if f32:
                    assert abs(r["ratio_vs_fp_f32"] - cell["FP f32 (ms)"]["value"] / r["value"]) < 1e-9
            # in OpenVINO, each quantized model's convolution ceiling from its profile: FP's convolutions over its
            ceilings = [r for r in rows if r["runtime"] == runtime and r["batch"] == batch and r.get("ceiling")]
            assert len(ceilings) == (12 if f32 else 0)
            assert all(r["value"] > 0 and r["ratio"] > 0 and r["what"].endswith(" convolutions (ms)") for r in ceilings)


@pytest.mark.slow
def test_bench_quick_fidelity_finishes_after_a_section_that_started_threads(tmp_path):
    """The fidelity section's process pool after the orchestration section (Ray's client threads,
    tqdm's monitor, torch's pool in this process): forked workers once hung there, in a futex
    inside Module.to, for 12 minutes; spawned ones start clean."""
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "orchestration,fidelity",
                             "--output", str(out)], check=False, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    sections = {r["section"] for r in json.loads(out.read_text())["rows"]}
    assert {"orchestration", "fidelity"} <= sections


def test_a_bench_search_whose_trials_all_fail_raises_instead_of_scoring_zero(tmp_path):
    """Every trial fails for real (injected errors in their first epoch): the bench says so,
    where it once printed a hypervolume of 0 as if it had measured one."""
    script = (
        "import sys\n"
        "from bench.searches import TINY, searched\n"
        "from search.config import config_from_dict, merge\n"
        "data = merge(TINY, {'name': 'all-fail', 'cache_dir': sys.argv[1] + '/cache', 'output_dir': sys.argv[1] + '/out',\n"
        "                    'search': {'num_samples': 2, 'max_concurrent': 2, 'max_failures': 0},\n"
        "                    'tracking': {'enabled': False}})\n"
        "try:\n"
        "    searched(config_from_dict(data), progress=False, log=lambda *_: None)\n"
        "except RuntimeError as err:\n"
        "    print('refused:', err)\n"
    )
    env = {**os.environ, "MQAT_INJECT_FAULTS": "1:error,2:error"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: bench: every trial of 'all-fail' failed (2); the first with:" in result.stdout
