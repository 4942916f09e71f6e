"""A trial's deployable model: its ONNX export (QDQ) and that export's latency, with the FP
model's in the same runtime beside it.

The latency is measured on the node that ran the trial, in the configured runtime (ONNX Runtime
or OpenVINO), threads fixed (``DeploySettings.threads``), so trials measure alike; on a GPU node
ONNX Runtime's CUDA (or TensorRT) provider is used, and ``latency_provider`` says which. The FP
model is exported once per worker process and timed with every trial's export, their runs
interleaved, so each trial reports ``speedup_vs_fp`` measured under one load: below 1, the
quantized model is slower than the one it started from. (Timed once per worker instead, the
quickstart printed x FP 2.4-3.0 for the trials of a worker whose FP timing met a busy moment,
4.42 ms against 1.53 ms on the other worker.)
"""
from __future__ import annotations

import atexit
import shutil
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
    runtime: str = "auto"        # openvino (a CPU that has it) or onnxruntime: mqat.resolve_runtime
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


def export_and_time(model, task: Task, directory: Path, settings: DeploySettings, device: str = "cpu",
                    fp_model=None, fp_key: Any = None) -> dict[str, Any]:
    """Export ``model`` as ``directory/model.onnx`` and time it; the metrics a trial reports:
    ``onnx_bytes``, ``latency_ms`` (batch 1), ``latency_ms_batch`` and ``latency_provider``.
    With ``fp_model`` (building the FP model whose weights ``fp_key`` names) the FP export is
    timed in the same runs, interleaved: ``fp_latency_ms``, ``speedup_vs_fp`` (FP's time over the
    model's at batch 1) and ``speedup_vs_fp_batch``."""
    example = example_input(task).detach().cpu()
    size = mqat.export_onnx(model, directory / ONNX_FILE, example_input=example, layout=settings.layout)
    paths = [directory / ONNX_FILE] + ([_fp_export(fp_model, example, settings, fp_key)] if fp_model else [])
    latencies = mqat.onnx_latencies(paths, tuple(example.shape[1:]), batch_sizes=(1, settings.latency_batch),
                                    runs=settings.latency_runs, threads=settings.latency_threads, device=device,
                                    runtime=settings.runtime)
    trial, batch = latencies[0], settings.latency_batch
    metrics = {"onnx_bytes": size, "latency_ms": trial.median_ms[1], "latency_ms_batch": trial.median_ms[batch],
               "latency_batch": batch, "latency_provider": trial.provider}
    if fp_model is not None:
        fp = latencies[1]
        metrics.update({"fp_latency_ms": fp.median_ms[1], "speedup_vs_fp": fp.median_ms[1] / trial.median_ms[1],
                        "speedup_vs_fp_batch": fp.median_ms[batch] / trial.median_ms[batch]})
    return metrics


_FP_EXPORTS: dict[tuple, Path] = {}  # per process: a worker reused across trials exports FP once


def _fp_export(build_fp_model, example, settings: DeploySettings, key: Any) -> Path:
    """The FP model's ONNX file in this process, exported on first use (removed at exit)."""
    cached = (key, settings.layout)
    if cached not in _FP_EXPORTS:
        directory = Path(tempfile.mkdtemp(prefix="mqat-fp-"))
        atexit.register(shutil.rmtree, directory, True)
        mqat.export_onnx(build_fp_model(), directory / ONNX_FILE, example_input=example, layout=settings.layout)
        _FP_EXPORTS[cached] = directory / ONNX_FILE
    return _FP_EXPORTS[cached]
