"""Latency of an exported ONNX model in ONNX Runtime: the median of timed runs, threads fixed."""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per batch size, and what they were measured on."""

    median_ms: dict[int, float]
    provider: str
    threads: int
    runs: int
    spread_ms: dict[int, float] = field(default_factory=dict)  # interquartile range per batch size

    def to_metrics(self) -> dict[str, float | str]:
        """Flat metrics: ``latency_ms`` (batch 1, or the smallest batch) and ``latency_ms_b<N>``."""
        first = min(self.median_ms)
        metrics: dict[str, float | str] = {"latency_ms": self.median_ms[first], "latency_provider": self.provider}
        metrics.update({f"latency_ms_b{b}": ms for b, ms in self.median_ms.items() if b != first})
        return metrics


def providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers, best first: TensorRT, then CUDA where ``device`` allows a
    GPU and the installed runtime has them; the CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = []
    if device != "cpu":
        chosen = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    return chosen + ["CPUExecutionProvider"]


def onnx_latency(path: str | os.PathLike, input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1,),
                 runs: int = 30, warmup: int = 3, threads: int = 1, device: str = "auto") -> Latency:
    """Time ``runs`` forward passes of the ONNX model at ``path`` per batch size (after ``warmup``
    untimed ones) on random float inputs of ``input_shape`` (without its batch dimension).

    ONNX Runtime's intra- and inter-op threads are fixed to ``threads``, so trials sharing a
    machine measure alike; the provider is the first :func:`providers` gives.

    Example::

        latency = mqat.onnx_latency("model.onnx", (3, 128, 128), batch_sizes=(1, 8))
        latency.median_ms[1], latency.provider
    """
    import numpy as np
    import onnxruntime as ort

    if runs < 1 or warmup < 0 or threads < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0, threads >= 1 and batch sizes >= 1, but got "
                         f"{runs}, {warmup}, {threads} and {list(batch_sizes)}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers(device))
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    medians, spreads = {}, {}
    for batch in sorted(set(batch_sizes)):
        feed = {name: rng.random((batch, *input_shape), dtype=np.float32)}
        for _ in range(warmup):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1000)
        medians[batch] = statistics.median(times)
        quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
        spreads[batch] = quartiles[2] - quartiles[0]
    return Latency(medians, session.get_providers()[0], threads, runs, spreads)
