"""A trial's deployable model: its ONNX export (QDQ) and that export's latency, with the FP
model's in the same runtime beside it.

The latency is measured on the node that ran the trial, in the configured runtime (ONNX Runtime
or OpenVINO), threads fixed (``DeploySettings.threads``), so trials measure alike; on a GPU node
ONNX Runtime's CUDA (or TensorRT) provider is used, and ``latency_provider`` says which. The FP
model is exported and timed the same way once per worker process (cached), so each trial reports
``speedup_vs_fp``: below 1, the quantized model is slower than the one it started from.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mqat
from tracking.artifacts import ONNX_FILE

from .tasks import Task, example_input


@dataclass(frozen=True)
class DeploySettings:
    """What a trial does with its final model beyond the packed file (``search.deploy``)."""

    onnx: bool = True            # export the final model as ONNX (QDQ) and time it
    layout: str = "speed"        # speed (int8 kernels) or size (int4 for 2-4 bits): mqat.export_onnx
    runtime: str = "onnxruntime"  # or openvino: where the latency is measured (mqat.onnx_latency)
    latency_batch: int = 8       # a second batch size timed beside batch 1
    latency_runs: int = 20       # timed runs per batch size (the median is reported)
    latency_threads: int = 1     # the runtime's intra- and inter-op threads

    def __post_init__(self) -> None:
        if self.layout not in mqat.LAYOUTS:
            raise ValueError(f"search.deploy.layout must be one of {list(mqat.LAYOUTS)}, but got {self.layout!r}")
        if self.runtime not in mqat.RUNTIMES:
            raise ValueError(f"search.deploy.runtime must be one of {list(mqat.RUNTIMES)}, but got {self.runtime!r}")
        for name in ("latency_batch", "latency_runs", "latency_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.deploy.{name} must be at least 1, but got {getattr(self, name)}")


def _time(path: Path, shape: tuple[int, ...], settings: DeploySettings, device: str) -> dict[str, Any]:
    latency = mqat.onnx_latency(path, shape, batch_sizes=(1, settings.latency_batch), runs=settings.latency_runs,
                                threads=settings.latency_threads, device=device, runtime=settings.runtime)
    return {"latency_ms": latency.median_ms[1], "latency_ms_batch": latency.median_ms[settings.latency_batch],
            "latency_batch": settings.latency_batch, "latency_provider": latency.provider}


def export_and_time(model, task: Task, directory: Path, settings: DeploySettings, device: str = "cpu") -> dict[str, Any]:
    """Export ``model`` as ``directory/model.onnx`` and time it; the metrics a trial reports:
    ``onnx_bytes``, ``latency_ms`` (batch 1), ``latency_ms_batch`` and ``latency_provider``."""
    example = example_input(task).detach().cpu()
    size = mqat.export_onnx(model, directory / ONNX_FILE, example_input=example, layout=settings.layout)
    return {"onnx_bytes": size, **_time(directory / ONNX_FILE, tuple(example.shape[1:]), settings, device)}


_FP_LATENCY: dict[tuple, dict[str, Any]] = {}  # per process: a worker reused across trials times FP once


def speedup_vs_fp(metrics: dict[str, Any], build_fp_model, task: Task, settings: DeploySettings, device: str,
                  key: Any) -> dict[str, Any]:
    """``fp_latency_ms`` and ``speedup_vs_fp`` (the FP model's time over the trial's, at batch 1;
    ``speedup_vs_fp_batch`` at the second batch size): the FP model (``build_fp_model()``, whose
    weights ``key`` names) exported and timed as the trial's, on the same node, once per process."""
    cached = (key, settings, device)
    if cached not in _FP_LATENCY:
        with tempfile.TemporaryDirectory() as directory:
            _FP_LATENCY[cached] = export_and_time(build_fp_model(), task, Path(directory), settings, device)
    fp = _FP_LATENCY[cached]
    return {"fp_latency_ms": fp["latency_ms"], "speedup_vs_fp": fp["latency_ms"] / metrics["latency_ms"],
            "speedup_vs_fp_batch": fp["latency_ms_batch"] / metrics["latency_ms_batch"]}
