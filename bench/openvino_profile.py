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
from collections.abc import Mapping, Sequence
from pathlib import Path

from mqat._latency import openvino_settings


def node_times(paths: Mapping[str, str | Path], input_shape: Sequence[int], *, batch: int = 1, turns: int = 8,
               burst: int = 5, threads: int = 1) -> dict[str, dict[str, float]]:
    """Per model (by name), median microseconds per run of each node type it executed
    (``Convolution``, ``Reorder``...), compiled as the deploy bench runs them (``threads``
    threads, latency hint, OpenVINO's default precision), on random inputs of ``(batch,
    *input_shape)``. The models run in turns, as the bench times them (an untimed run, then
    ``burst`` profiled ones, model after model): a machine's drift then moves all of them alike,
    where models profiled one after the other differed by 1.5x between two with the same convolutions."""
    import numpy as np
    import openvino as ov

    feed = np.random.default_rng(0).random((batch, *input_shape), dtype=np.float32)
    settings = {**openvino_settings(threads), "PERF_COUNT": True}
    core = ov.Core()
    requests = {name: core.compile_model(str(path), "CPU", settings).create_infer_request()
                for name, path in paths.items()}
    runs: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in paths}
    for request in requests.values():  # warm-up: the first runs compile kernels and fill the caches
        for _ in range(3):
            request.infer({0: feed})
    for _ in range(turns):
        for name, request in requests.items():
            request.infer({0: feed})  # untimed: brings back what the other models pushed out of the caches
            for _ in range(burst):
                request.infer({0: feed})
                for kind, value in _by_type(request.profiling_info).items():
                    runs[name][kind].append(value)
    return {name: {kind: statistics.median(values) for kind, values in kinds.items()} for name, kinds in runs.items()}


def _by_type(profiling_info) -> dict[str, float]:
    """Microseconds of one run's executed nodes, summed by node type."""
    from openvino import ProfilingInfo

    totals: dict[str, float] = defaultdict(float)
    for node in profiling_info:
        if node.status == ProfilingInfo.Status.EXECUTED:  # a fused node is listed too, not run
            totals[node.node_type] += node.real_time.total_seconds() * 1e6
    return totals


def convolution_ceiling(fp: dict[str, float], quantized: dict[str, float]) -> float:
    """The FP model's convolution time over the quantized model's (:func:`node_times` of each)."""
    return fp["Convolution"] / quantized["Convolution"]
