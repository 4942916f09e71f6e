"""Where an OpenVINO model's time goes, from its own per-node profile (``PERF_COUNT``).

The deploy bench divides the FP model's convolution time by a quantized model's: the speed-up
the quantized model would have if every node but its convolutions cost nothing. That ceiling
says whether a goal is out of reach on the CPU at hand (the convolutions' own speed-up falls
short of it) or only the other nodes (reorders between layouts and precisions, quantizers that did
not fuse, resizes) stand in the way.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def node_times(path: str | Path, input_shape: Sequence[int], *, batch: int = 1, runs: int = 30,
               threads: int = 1) -> dict[str, float]:
    """Median microseconds per run of each node type (``Convolution``, ``Reorder``...) executed by the
    ONNX model at ``path``, compiled as the deploy bench runs it (``threads`` threads, latency
    hint, OpenVINO's default precision), on random inputs of ``(batch, *input_shape)``."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads,
                                                          "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    feed = np.random.default_rng(0).random((batch, *input_shape), dtype=np.float32)
    for _ in range(3):  # warm-up: the first runs compile kernels and fill the caches
        request.infer({0: feed})
    per_run: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        request.infer({0: feed})
        totals: dict[str, float] = defaultdict(float)
        for node in request.profiling_info:
            if node.status == ov.ProfilingInfo.Status.EXECUTED:  # a fused node is listed too, not run
                totals[node.node_type] += node.real_time.total_seconds() * 1e6
        for kind, value in totals.items():
            per_run[kind].append(value)
    return {kind: statistics.median(values) for kind, values in per_run.items()}


def convolution_ceiling(fp: dict[str, float], quantized: dict[str, float]) -> float:
    """The FP model's convolution time over the quantized model's (:func:`node_times` of each)."""
    return fp["Convolution"] / quantized["Convolution"]
