"""A trial's deployable model: its ONNX export (QDQ) and that export's latency in ONNX Runtime.

The latency is measured on the node that ran the trial, with ONNX Runtime's threads fixed
(``DeploySettings.threads``), so trials measure alike; on a GPU node the CUDA (or TensorRT)
provider is used, and ``latency_provider`` says which.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mqat

from .tasks import example_input

ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class DeploySettings:
    """What a trial does with its final model beyond the packed file (``search.onnx`` ...)."""

    onnx: bool = True            # export the final model as ONNX (and time it)
    latency_batch: int = 8       # a second batch size timed beside batch 1
    latency_runs: int = 20       # timed runs per batch size (the median is reported)
    latency_threads: int = 1     # ONNX Runtime's intra- and inter-op threads


def export_and_time(model, task, directory: Path, settings: DeploySettings, device: str = "cpu") -> dict[str, Any]:
    """Export ``model`` as ``directory/model.onnx`` and time it; the metrics a trial reports:
    ``onnx_bytes``, ``latency_ms`` (batch 1), ``latency_ms_batch`` and ``latency_provider``."""
    example = example_input(task).detach().cpu()
    size = mqat.export_onnx(model, directory / ONNX_FILE, example_input=example)
    latency = mqat.onnx_latency(directory / ONNX_FILE, tuple(example.shape[1:]),
                                batch_sizes=(1, settings.latency_batch), runs=settings.latency_runs,
                                threads=settings.latency_threads, device=device)
    return {"onnx_bytes": size, "latency_ms": latency.median_ms[1],
            "latency_ms_batch": latency.median_ms[settings.latency_batch],
            "latency_batch": settings.latency_batch, "latency_provider": latency.provider}
