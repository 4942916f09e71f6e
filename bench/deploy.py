"""Deployed speed: the quickstart's FP pose network against quantized plans, exported in both ONNX
layouts (``speed``: 8-bit containers, BN folded, strided 1x1 convs sliced; ``size``: int4 for 2
to 4 bits), timed in ONNX Runtime and in OpenVINO at batch 1 and 8, each as a ratio to the FP
model timed in the same runtime, in this process, one thread: the models' runs interleaved burst
by burst (an untimed run, then ``BURST`` timed ones), within a runtime and batch
(``bench.timing.interleaved``: drift hits all alike), medians reported. OpenVINO runs an FP
model's float layers in bf16 on a CPU with bf16 instructions: the ratio is to that default;
``ratio_vs_fp_f32`` to the same FP model with its floats in f32, as ONNX Runtime and PyTorch run it.
Beside them, each quantized model's convolution ceiling in OpenVINO (``bench.openvino_profile``):
what x FP would be if every node but the convolutions cost nothing.

The plans are the backbone bit-widths a front spans (8, 4, 3 and 2 bits, the rest as the
quickstart's fronts had them), calibrated on training images, not trained: latency depends on the
plan and the layout, not on the weights' values; each also with one input quantizer per shared
tensor (``shared``, speed layout: ``search.stage.share_inputs``).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .timing import interleaved, row

SECTION = "deploy"
PLANS = {"W8-8-8": (8, 8, 8), "W4-8-8": (4, 8, 8), "W3-4-8": (3, 4, 8), "W2-3-4": (2, 3, 4)}
RUNTIMES = ("onnxruntime", "openvino")
FP_F32 = "FP f32"  # OpenVINO's FP model with its float layers in f32 (its default is bf16 where the CPU has it)
BATCHES = (1, 8)
GOAL = 1.5  # x the FP model in the runtime's default precision, at either batch (8-bit activations)
#: timed runs a turn, after an untimed one: a model serving request after request has its weights in
#: the caches, where single alternating runs of eleven models timed each with the others' left there
BURST = 5


def _models(quick: bool, directory: Path) -> dict[str, Path]:
    """The FP export and each plan in each layout, by name."""
    import torch

    import mqat
    from search.config import config_from_dict
    from search.prepare import check, prepare
    from trainables.tasks import example_input

    from . import searches

    config = config_from_dict({**searches.module_level(searches.base_config(quick, cheap=False)),
                               "tracking": {"enabled": False}})
    prepared = prepare(config, check(config, progress=False), progress=False, log=lambda *_: None)
    task = prepared.checked.task
    example = example_input(task).detach().cpu()
    fp = task.build_model()
    fp.load_state_dict(prepared.fp_state)
    models = {"FP": directory / "fp.onnx"}
    mqat.export_onnx(fp.eval(), models["FP"], example_input=example)  # no quantized layer: a plain export
    for name, bits in PLANS.items():
        for shared in (False, True):
            model = task.build_model()
            model.load_state_dict(prepared.fp_state)
            mqat.quantize_(model, mqat.BitPlan(dict(zip(task.module_map.names, bits)), act_bits=8), task.module_map)
            if shared:  # one input quantizer per tensor its readers share: speed layout only
                mqat.share_input_quantizers(model, mqat.input_groups(model, example))
            mqat.calibrate(model, task.train_batches(2), seed=0)
            for layout in ("speed",) if shared else ("speed", "size"):
                key = f"{name} {layout}" + (" shared" if shared else "")
                models[key] = directory / f"{key.replace(' ', '-')}.onnx"
                mqat.export_onnx(model.eval(), models[key], example_input=example, layout=layout)
    torch.set_num_threads(1)
    return models, tuple(example.shape[1:])


def run(quick: bool = False) -> list[dict]:
    import numpy as np

    import mqat

    rounds = 2 if quick else 16
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        models, shape = _models(quick, Path(temp))
        for runtime in RUNTIMES:
            if runtime == "openvino" and not mqat.runtime_available("openvino"):
                rows.append(row(SECTION, "OpenVINO", None, note="not installed: pip install openvino"))
                continue
            runners = {name: mqat.onnx_runner(path, runtime=runtime, threads=1, device="cpu")[0]
                       for name, path in models.items()}
            if runtime == "openvino":  # its FP default is bf16 where the CPU has it: f32 beside it
                runners[FP_F32] = mqat.onnx_runner(models["FP"], runtime=runtime, threads=1, device="cpu",
                                                   float_precision="f32")[0]
            for batch in BATCHES:
                feed = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
                seconds = interleaved({name: (lambda r=r, feed=feed: r(feed)) for name, r in runners.items()},
                                      rounds=rounds, warmup=3, burst=BURST)
                for name, value in seconds.items():
                    ratio = seconds["FP"] / value
                    goal = None if name in ("FP", FP_F32) else f">= {GOAL}x FP"
                    met = None if goal is None else ratio >= GOAL
                    extra = {"ratio_vs_fp_f32": seconds[FP_F32] / value} if FP_F32 in seconds else {}
                    rows.append(row(SECTION, f"{runtime} batch {batch}: {name} (ms)", value * 1e3, ratio=ratio,
                                    goal=goal, met=met, runtime=runtime, batch=batch, **extra))
            if runtime == "openvino":
                rows += _ceiling_rows(models, shape, turns=rounds)
    return rows


def _ceiling_rows(models: dict[str, Path], shape: tuple[int, ...], turns: int) -> list[dict]:
    """Per quantized model and batch, its convolutions' time in OpenVINO's own profile and the
    FP model's over it: the x FP it would reach if every other node cost nothing."""
    from .openvino_profile import convolution_ceiling, node_times

    rows = []
    for batch in BATCHES:
        times = node_times(models, shape, batch=batch, turns=turns, burst=BURST)
        fp_ms = times["FP"]["Convolution"] / 1e3
        for name, nodes in times.items():
            if name != "FP":
                rows.append(row(SECTION, f"openvino batch {batch}: {name} convolutions (ms)",
                                nodes["Convolution"] / 1e3, ratio=convolution_ceiling(times["FP"], nodes),
                                note=f"x FP with every other node free (FP's convolutions {fp_ms:.4g} ms)",
                                runtime="openvino", batch=batch, ceiling=True))
    return rows
