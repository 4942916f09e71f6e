"""Trial rows: the one flat record per trial that tables, plots and reports share."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .pareto import pareto_mask

#: Row fields, in table order (the Parquet schema follows this list).
#: ``accuracy`` is the validation score the search ranked; ``test_accuracy`` the held-out test
#: score of a front model (null elsewhere: no search decision sees the test split).
FIELDS = ("trial_id", "status", "error", "ilp_seed", "seed", "pareto", "accuracy", "accuracy_se",
          "test_accuracy", "test_accuracy_se", "add_auc", "compression", "model_bytes",
          "accuracy_raw", "accuracy_ema", "accuracy_bn", "accuracy_qc", "oscillating_fraction",
          "order", "plan", "ema", "ema_decay", "qc", "qc_lr", "bn", "lr", "epochs_per_stage", "path")


def _is_seed(config: Mapping[str, Any], seeds: Iterable[Mapping[str, Any]]) -> bool:
    return any(all(config.get(k) == v for k, v in seed.items()) for seed in seeds)


def row(trial_id: str, config: Mapping[str, Any], metrics: Mapping[str, Any], *, error: str | None,
        seeds: Iterable[Mapping[str, Any]] = (), path: str | None = None) -> dict[str, Any]:
    """One trial as a flat record; a failed or unfinished trial has no accuracy or compression."""
    finished = error is None and bool(metrics.get("final"))
    bits = {k[len("bits_"):]: int(v) for k, v in config.items() if k.startswith("bits_")}
    get = (lambda key: metrics.get(key)) if finished else (lambda key: None)
    return {
        "trial_id": trial_id, "status": "finished" if finished else ("failed" if error else "unfinished"),
        "error": error, "ilp_seed": _is_seed(config, seeds), "seed": config.get("seed"), "pareto": False,
        "accuracy": get("accuracy"), "accuracy_se": get("metric/accuracy_se"),
        "test_accuracy": None, "test_accuracy_se": None,
        "add_auc": get("metric/add_auc"), "compression": get("compression"),
        "model_bytes": get("model_bytes"), "accuracy_raw": get("accuracy_raw"),
        "accuracy_ema": get("accuracy_ema"), "accuracy_bn": get("accuracy_bn"),
        "accuracy_qc": get("accuracy_qc"),
        "oscillating_fraction": get("oscillating_fraction"), "order": config.get("order"),
        "plan": json.dumps({"weight_bits": bits, "act_bits": config.get("act_bits")}, sort_keys=True),
        "ema": bool(config.get("ema")), "ema_decay": config.get("ema_decay") if config.get("ema") else None,
        "qc": bool(config.get("qc")), "qc_lr": config.get("qc_lr") if config.get("qc") else None,
        "bn": bool(config.get("bn")),
        "lr": config.get("lr"), "epochs_per_stage": config.get("epochs_per_stage"), "path": path,
    }


def mark_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``pareto`` on the finished rows that no other finished row dominates."""
    done = [r for r in rows if r["accuracy"] is not None and r["compression"] is not None]
    mask = pareto_mask([(r["accuracy"], r["compression"]) for r in done])
    for r in rows:
        r["pareto"] = False
    for r, keep in zip(done, mask):
        r["pareto"] = bool(keep)
    return rows


def collect(grid, seeds: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Rows of a Ray Tune ``ResultGrid``, the front marked."""
    seeds = list(seeds)
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        error = None
        if result.error is not None:
            error = str(result.error).strip().splitlines()[-1][:500] if str(result.error).strip() \
                else type(result.error).__name__
        trial_id = metrics.get("trial_id") or (result.path.rstrip("/").split("/")[-1] if result.path else "?")
        rows.append(row(trial_id, result.config or {}, metrics, error=error, seeds=seeds,
                        path=str(result.path) if result.path else None))
    return mark_front(rows)


def _with_se(value: float | None, se: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" +- {se:.3f}" if se is not None else "")


def format_front(rows: list[dict[str, Any]]) -> str:
    """The Pareto rows as a table, by compression."""
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["compression"])
    if not front:
        return "(no finished trial)"
    modules = "-".join(json.loads(front[0]["plan"])["weight_bits"])
    header = (f"{'compression':>11}  {'val ADD-0.1d':>16}  {'test ADD-0.1d':>16}  {'bytes':>9}  "
              f"{'bits':<12} {'order':<22} {'ema':>7} {'qc':>7} {'bn':>3}  trial")
    lines = [header]
    for r in front:
        bits = "-".join(str(b) for b in json.loads(r["plan"])["weight_bits"].values())
        ema = f"{r['ema_decay']:.4g}" if r["ema"] else "-"
        qc = f"{r['qc_lr']:.1e}" if r["qc"] else "-"
        lines.append(f"{r['compression']:10.2f}x  {_with_se(r['accuracy'], r['accuracy_se']):>16}  "
                     f"{_with_se(r['test_accuracy'], r['test_accuracy_se']):>16}  "
                     f"{r['model_bytes']:>9,}  {bits:<12} {str(r['order']):<22} {ema:>7} {qc:>7} "
                     f"{'yes' if r['bn'] else '-':>3}  {r['trial_id']}{' (ILP)' if r['ilp_seed'] else ''}")
    lines.append(f"bits: weight bits of {modules}; val: the validation images the search ranked on; "
                 "test: held-out images no search decision saw (+- standard error); ema: EMA decay; "
                 "qc: QC learning rate; bn: BN statistics re-estimated; (ILP): an ILP seed plan")
    return "\n".join(lines)
