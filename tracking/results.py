"""Trial rows: the one flat record per trial that tables, plots and reports share."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spaces import weight_bits

from .metric import ACCURACY, Metric
from .objectives import DEFAULT, complete, maximised
from .pareto import pareto_mask

#: Row fields, in table order (the Parquet schema follows this list); the task's companion
#: metrics (``Metric.companions``) follow them, one column each.
#: ``accuracy`` is the validation score the search ranked (the task's metric, higher is better);
#: ``test_accuracy`` the held-out test score of a front model (null elsewhere: no search
#: decision sees the test split).
FIELDS = ("trial_id", "status", "error", "ilp_seed", "seed", "pareto", "accuracy", "accuracy_se",
          "test_accuracy", "test_accuracy_se", "test_accuracy_onnx", "test_accuracy_onnx_se",
          "compression", "model_bytes", "bops", "onnx_bytes",
          "latency_ms", "latency_ms_batch", "latency_provider", "fp_latency_ms", "speedup_vs_fp",
          "speedup_vs_fp_batch",
          "accuracy_raw", "accuracy_ema", "accuracy_bn", "accuracy_qc", "oscillating_fraction",
          "order", "plan", "ema", "ema_decay", "qc", "qc_lr", "bn", "lr", "epochs_per_stage", "path")


def error_text(trial) -> str:
    """A failed trial's traceback: Tune writes it to the trial's local directory before the
    callbacks run, and copies it to storage later (``get_error`` reads storage: a race)."""
    local = getattr(trial, "error_file", None)
    if local and Path(local).is_file():
        return Path(local).read_text()
    return str(trial.get_error() or "")


def last_line(text: str, limit: int = 500, default: str = "error") -> str:
    """The last non-blank line of a traceback (its exception), at most ``limit`` characters."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:limit] if lines else default


def error_line(trial, limit: int = 500) -> str:
    """The last line of a failed trial's traceback (its exception), at most ``limit`` characters."""
    return last_line(error_text(trial), limit)


def _is_seed(config: Mapping[str, Any], seeds: Iterable[Mapping[str, Any]]) -> bool:
    return any(all(config.get(k) == v for k, v in seed.items()) for seed in seeds)


def row(trial_id: str, config: Mapping[str, Any], metrics: Mapping[str, Any], *, error: str | None,
        seeds: Iterable[Mapping[str, Any]] = (), path: str | None = None,
        companions: Iterable[str] = (), modules: Sequence[str] | None = None) -> dict[str, Any]:
    """One trial as a flat record; a failed or unfinished trial has no accuracy or compression.
    ``companions``: the task's other metrics to keep, read from the final report; ``modules``:
    the network's modules, in its order (the plan's order)."""
    finished = error is None and bool(metrics.get("final"))
    # a trial Tune never started may come back without a configuration
    bits = weight_bits(config, [m for m in modules if f"bits_{m}" in config] if modules else None)
    get = (lambda key: metrics.get(key)) if finished else (lambda key: None)
    return {
        "trial_id": trial_id,
        "status": "finished" if finished else "failed" if error else "unfinished",
        "error": error, "ilp_seed": _is_seed(config, seeds), "seed": config.get("seed"), "pareto": False,
        "accuracy": get("accuracy"), "accuracy_se": get("metric/accuracy_se"),
        "test_accuracy": None, "test_accuracy_se": None, "test_accuracy_onnx": None, "test_accuracy_onnx_se": None,
        "compression": get("compression"),
        "model_bytes": get("model_bytes"), "bops": get("bops"), "onnx_bytes": get("onnx_bytes"), "latency_ms": get("latency_ms"),
        "latency_ms_batch": get("latency_ms_batch"), "latency_provider": get("latency_provider"),
        "fp_latency_ms": get("fp_latency_ms"), "speedup_vs_fp": get("speedup_vs_fp"),
        "speedup_vs_fp_batch": get("speedup_vs_fp_batch"),
        "accuracy_raw": get("accuracy_raw"),
        "accuracy_ema": get("accuracy_ema"), "accuracy_bn": get("accuracy_bn"),
        "accuracy_qc": get("accuracy_qc"),
        "oscillating_fraction": get("oscillating_fraction"), "order": config.get("order"),
        "plan": json.dumps({"act_bits": config.get("act_bits"), "weight_bits": bits}),
        "ema": bool(config.get("ema")), "ema_decay": config.get("ema_decay") if config.get("ema") else None,
        "qc": bool(config.get("qc")), "qc_lr": config.get("qc_lr") if config.get("qc") else None,
        "bn": bool(config.get("bn")),
        "lr": config.get("lr"), "epochs_per_stage": config.get("epochs_per_stage"), "path": path,
        **{key: get(f"metric/{key}") for key in companions},
    }


def mark_front(rows: list[dict[str, Any]], objectives: Sequence[str] = DEFAULT) -> list[dict[str, Any]]:
    """Set ``pareto`` on the finished rows that no other finished row dominates in ``objectives``."""
    done = [r for r in rows if complete(r, objectives)]
    mask = pareto_mask(maximised(done, objectives))
    for r in rows:
        r["pareto"] = False
    for r, keep in zip(done, mask):
        r["pareto"] = bool(keep)
    return rows


def collect(grid, seeds: Iterable[Mapping[str, Any]] = (), companions: Iterable[str] = (),
            modules: Sequence[str] | None = None, objectives: Sequence[str] = DEFAULT) -> list[dict[str, Any]]:
    """Rows of a Ray Tune ``ResultGrid``, the front marked."""
    seeds = list(seeds)
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        error = None
        if result.error is not None:
            error = last_line(str(result.error), default=type(result.error).__name__)
        trial_id = metrics.get("trial_id") or (result.path.rstrip("/").split("/")[-1] if result.path else "?")
        rows.append(row(trial_id, result.config or {}, metrics, error=error, seeds=seeds,
                        path=str(result.path) if result.path else None, companions=companions,
                        modules=modules))
    return mark_front(rows, objectives)


def _with_se(value: float | None, se: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" +- {se:.3f}" if se is not None else "")


def _speedup(row: dict[str, Any]) -> str:
    value = row.get("speedup_vs_fp")
    return "-" if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _by_module(units: list[str]) -> dict[str, list[str]]:
    """Units in network order, by module: a group ``<module>.<path>`` under its module."""
    grouped: dict[str, list[str]] = {}
    for unit in units:
        grouped.setdefault(unit.split(".", 1)[0], []).append(unit)
    return grouped


def _bits(weight_bits: dict[str, int]) -> str:
    """A plan's bits, ``4-2-4`` by module, or ``8-6-3-3-2-3/6-8-6-6-6/8-8`` by module's groups."""
    grouped = _by_module(list(weight_bits)).values()
    separator = "-" if all(len(units) == 1 for units in grouped) else "/"
    return separator.join("-".join(str(weight_bits[u]) for u in units) for units in grouped)


def _bits_legend(units: list[str]) -> str:
    grouped = _by_module(units)
    if all(len(v) == 1 for v in grouped.values()):
        return "-".join(units)
    return "/".join(f"{m} ({len(v)} group{'s' if len(v) > 1 else ''})" for m, v in grouped.items())


def _lost_in_runtime(r: dict[str, Any]) -> bool:
    """The deployed file scored below the PyTorch model by more than two standard errors of the
    difference (the two scores' errors taken as independent: a conservative test)."""
    deployed, test = r.get("test_accuracy_onnx"), r.get("test_accuracy")
    if deployed is None or test is None:
        return False
    se = ((r.get("test_accuracy_se") or 0.0) ** 2 + (r.get("test_accuracy_onnx_se") or 0.0) ** 2) ** 0.5
    return test - deployed > 2 * se


def format_front(rows: list[dict[str, Any]], metric: Metric = ACCURACY) -> str:
    """The Pareto rows as a table, by compression, the score named as ``metric`` names it."""
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["compression"])
    if not front:
        return "(no finished trial)"
    modules = _bits_legend(list(json.loads(front[0]["plan"])["weight_bits"]))
    latency = any(r.get("latency_ms") is not None for r in front)
    header = (f"{'compression':>11}  {'val ' + metric.name:>16}  {'test ' + metric.name:>16}  {'bytes':>9}  "
              + (f"{'ms':>7}  {'x FP':>5}  " if latency else "") +
              f"{'bits':<12} {'order':<22} {'ema':>7} {'qc':>7} {'bn':>3}  trial")
    deployed = any(r.get("test_accuracy_onnx") is not None for r in front)
    if deployed:
        header = header.replace(f"{'bytes':>9}", f"{'test, in runtime':>16}  {'bytes':>9}", 1)
    lines = [header]
    for r in front:
        bits = _bits(json.loads(r["plan"])["weight_bits"])
        ema = f"{r['ema_decay']:.4g}" if r["ema"] else "-"
        qc = f"{r['qc_lr']:.1e}" if r["qc"] else "-"
        lines.append(f"{r['compression']:10.2f}x  {_with_se(r['accuracy'], r['accuracy_se']):>16}  "
                     f"{_with_se(r['test_accuracy'], r['test_accuracy_se']):>16}  "
                     + (f"{_with_se(r.get('test_accuracy_onnx'), r.get('test_accuracy_onnx_se')):>16}  " if deployed else "")
                     + f"{r['model_bytes']:>9,}  " + (f"{_ms(r.get('latency_ms')):>7}  {_speedup(r):>5}  " if latency else "") +
                     f"{bits:<12} {r['order']!s:<22} {ema:>7} {qc:>7} "
                     f"{'yes' if r['bn'] else '-':>3}  {r['trial_id']}{' (ILP)' if r['ilp_seed'] else ''}")
    runtimes = sorted({str(r.get("latency_provider")) for r in front if r.get("latency_ms") is not None})
    slower = [r for r in front if (r.get("speedup_vs_fp") or 1.0) < 1.0]
    if slower:
        other = "" if any(r.startswith("openvino") for r in runtimes) else "; try search.deploy.runtime: openvino"
        lines.append(f"note: {len(slower)} of {len(front)} front models run slower than the FP model in "
                     f"{', '.join(runtimes)} (x FP below 1){other}")
    lost = [r for r in front if _lost_in_runtime(r)]
    if lost:
        onnx_runtimes = ", ".join(runtimes) or "the deployment runtime"
        openvino = runtimes and all(r.startswith("openvino") for r in runtimes)
        other = "; compare search.deploy.runtime: onnxruntime" if openvino else ""
        lines.append(f"note: {len(lost)} of {len(front)} front models score lower from their ONNX file in "
                     f"{onnx_runtimes} than in PyTorch by more than two standard errors (test, in runtime){other}")
    lines.append((f"ms: median latency at batch 1 in {', '.join(runtimes)}; x FP: the FP model's latency over "
                  "the model's, timed alike on the same node; " if latency else "") +
                 f"bits: weight bits of {modules}; val: the validation images the search ranked on; "
                 "test: held-out images no search decision saw (+- standard error)"
                 + ("; test, in runtime: the same images scored from the ONNX file run in that runtime" if deployed else "")
                 + "; ema: EMA decay; "
                 "qc: QC learning rate; bn: BN statistics re-estimated; (ILP): an ILP seed plan")
    return "\n".join(lines)
