"""Latency of an exported ONNX model in ONNX Runtime or OpenVINO: the median of timed runs,
threads fixed, the runtime and its device recorded with every figure."""
from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
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


RUNTIMES = ("auto", "onnxruntime", "openvino")


def resolve_runtime(runtime: str = "auto", device: str = "auto") -> str:
    """The runtime ``"auto"`` stands for: OpenVINO on a CPU where it is installed (it runs QDQ
    models through int8 kernels, where ONNX Runtime's CPU provider ran the quickstart's front
    slower than its FP model), ONNX Runtime on a GPU node (its CUDA or TensorRT provider) or where
    OpenVINO is missing. Other names are returned as they are."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, but got {runtime!r}")
    if runtime != "auto":
        return runtime
    return "openvino" if device != "cuda" and runtime_available("openvino") else "onnxruntime"


def _onnxruntime(path, threads: int, device: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers(device))
    name = session.get_inputs()[0].name
    return (lambda feed: session.run(None, {name: feed})), session.get_providers()[0]


def openvino_settings(threads: int, float_precision: str | None = None) -> dict:
    """How a model is compiled for OpenVINO's CPU to be timed: ``threads`` threads, latency hint,
    float layers in ``float_precision`` (OpenVINO's own default if None)."""
    settings: dict = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if float_precision is not None:
        settings["INFERENCE_PRECISION_HINT"] = float_precision
    return settings


def _openvino(path, threads: int, device: str, float_precision: str | None = None):
    """The provider names the precision OpenVINO runs float layers in: its default is bf16 on a
    CPU with bf16 instructions (AVX-512 BF16, AMX), so an "FP" model there is not run in f32."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", openvino_settings(threads, float_precision))
    request = compiled.create_infer_request()
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return (lambda feed: request.infer({0: feed})), f"openvino:CPU ({precision} floats)"


def runner(path: str | os.PathLike, *, runtime: str = "onnxruntime", threads: int = 1, device: str = "auto",
           float_precision: str | None = None):
    """``(run, provider)``: ``run(inputs)`` runs the ONNX model at ``path`` once in ``runtime``
    (see :func:`onnx_latency`, which times it), on a float32 array of one input batch.
    ``float_precision`` (OpenVINO only, e.g. ``"f32"``): the precision of its float layers, its
    own default (bf16 on CPUs that have it) if None."""
    runtime = resolve_runtime(runtime, device)
    if runtime == "openvino" and (device == "cuda" or not runtime_available("openvino")):
        if device != "cuda":
            warnings.warn("OpenVINO is not installed (pip install openvino): timing in ONNX Runtime instead",
                          stacklevel=3)
        runtime = "onnxruntime"
    if runtime == "openvino":
        return _openvino(path, threads, device, float_precision)
    return _onnxruntime(path, threads, device)


def runtime_available(runtime: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(runtime) is not None


def onnx_latency(path: str | os.PathLike, input_shape: Sequence[int], *, batch_sizes: Sequence[int] = (1,),
                 runs: int = 30, warmup: int = 3, threads: int = 1, device: str = "auto",
                 runtime: str = "onnxruntime") -> Latency:
    """Time ``runs`` forward passes of the ONNX model at ``path`` per batch size (after ``warmup``
    untimed ones) on random float inputs of ``input_shape`` (without its batch dimension).

    ``runtime``: ``"onnxruntime"`` (its provider the first :func:`providers` gives: TensorRT or
    CUDA on a GPU node), ``"openvino"`` (its CPU plugin, which runs QDQ models with int8 kernels;
    where OpenVINO is not installed, ONNX Runtime times the model instead, with a warning, and the
    provider says so) or ``"auto"`` (:func:`resolve_runtime`: OpenVINO on a CPU that has it). Intra- and inter-op threads are fixed to ``threads``, so trials sharing a
    machine measure alike.

    Example::

        latency = mqat.onnx_latency("model.onnx", (3, 128, 128), batch_sizes=(1, 8), runtime="openvino")
        latency.median_ms[1], latency.provider
    """
    return onnx_latencies([path], input_shape, batch_sizes=batch_sizes, runs=runs, warmup=warmup,
                          threads=threads, device=device, runtime=runtime)[0]


def onnx_latencies(paths: Sequence[str | os.PathLike], input_shape: Sequence[int], *,
                   batch_sizes: Sequence[int] = (1,), runs: int = 30, warmup: int = 3, threads: int = 1,
                   device: str = "auto", runtime: str = "onnxruntime", burst: int = 5) -> list[Latency]:
    """:func:`onnx_latency` of several models on the same inputs, their runs interleaved turn by
    turn (A, B, A, B, ...), so that whatever else loads the machine meanwhile (a trial training
    beside it) slows each alike and their ratio holds: a model timed against a baseline is timed
    with it. A turn is one untimed run, which brings back into the caches what the other models'
    turns pushed out, then ``burst`` timed runs (``runs`` rounded up to whole bursts): the latency
    of a model that serves one request after another. ``burst=1`` times single alternating runs
    with no untimed one: each starts where the other models left the caches (three models in turn
    read the quickstart's FP model 1.25 ms at batch 1 in OpenVINO, 0.96 ms in bursts of 10).
    One :class:`Latency` per path, in order."""
    import numpy as np

    if runs < 1 or warmup < 0 or threads < 1 or burst < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0, threads >= 1, burst >= 1 and batch sizes >= 1, "
                         f"but got {runs}, {warmup}, {threads}, {burst} and {list(batch_sizes)}")
    runners = [runner(path, runtime=runtime, threads=threads, device=device) for path in paths]
    rng, turns = np.random.default_rng(0), -(-runs // burst)
    times: list[dict[int, list[float]]] = [{} for _ in runners]
    for batch in sorted(set(batch_sizes)):
        feed = rng.random((batch, *input_shape), dtype=np.float32)
        calls = [lambda run=run, feed=feed: run(feed) for run, _ in runners]
        seconds = in_turns(calls, turns=turns, burst=burst, warmup=warmup)
        for model, samples in zip(times, seconds):
            model[batch] = [s * 1000 for s in samples]
    return [Latency({b: statistics.median(t) for b, t in model.items()}, provider, threads, turns * burst,
                    {b: _interquartile(t) for b, t in model.items()})
            for (_, provider), model in zip(runners, times)]


def in_turns(calls: Sequence[Callable[[], object]], *, turns: int, burst: int = 1, warmup: int = 0) -> list[list[float]]:
    """Seconds of each of ``calls``' timed runs, the calls run in turn A, B, A, B, ... (after
    ``warmup`` untimed runs each): ``turns`` turns of ``burst`` timed runs, each turn started by
    an untimed run when ``burst`` > 1 (it brings back into the caches what the others' turns
    pushed out). One list per call, in order."""
    for call in calls:
        for _ in range(warmup):
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(turns):
        for call, timed in zip(calls, samples):
            if burst > 1:
                call()
            for _ in range(burst):
                start = time.perf_counter()
                call()
                timed.append(time.perf_counter() - start)
    return samples


def _interquartile(times: list[float]) -> float:
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return quartiles[2] - quartiles[0]
