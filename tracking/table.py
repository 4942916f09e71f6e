"""The trials table as Parquet: a fixed, documented schema (and the task's companion metrics),
written atomically."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mqat import atomic_write

from .results import FIELDS

#: One row per trial. ``plan`` is JSON (``{"weight_bits": {...}, "act_bits": ...}``); metrics of a
#: failed or unfinished trial are null; ``bops`` are the plan's bit operations
#: (MACs times weight and input bits, for one image); ``pareto`` marks the front; ``ilp_seed`` an ILP seed plan,
#: ``seed`` the trial's random seed; ``test_*`` are set for front models only (``test_accuracy_onnx``:
#: its ONNX file run in ``search.deploy.runtime``); ``onnx_bytes`` and
#: ``latency_*`` describe the trial's ONNX export (median ms at batch 1 and at ``search.deploy.latency_batch``,
#: on ``latency_provider``), ``speedup_vs_fp`` the FP model's latency over the trial's, timed alike on
#: the same node (below 1: slower than FP). The task's companion
#: metrics follow as float columns named by their keys.
SCHEMA = pa.schema([
    ("trial_id", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("ilp_seed", pa.bool_()), ("seed", pa.int64()), ("pareto", pa.bool_()),
    ("accuracy", pa.float64()), ("accuracy_se", pa.float64()),
    ("test_accuracy", pa.float64()), ("test_accuracy_se", pa.float64()),
    ("test_accuracy_onnx", pa.float64()), ("test_accuracy_onnx_se", pa.float64()),
    ("compression", pa.float64()), ("model_bytes", pa.int64()), ("bops", pa.float64()), ("onnx_bytes", pa.int64()),
    ("latency_ms", pa.float64()), ("latency_ms_batch", pa.float64()), ("latency_provider", pa.string()),
    ("fp_latency_ms", pa.float64()), ("speedup_vs_fp", pa.float64()), ("speedup_vs_fp_batch", pa.float64()),
    ("accuracy_raw", pa.float64()), ("accuracy_ema", pa.float64()), ("accuracy_bn", pa.float64()),
    ("accuracy_qc", pa.float64()),
    ("oscillating_fraction", pa.float64()), ("order", pa.string()), ("plan", pa.string()),
    ("ema", pa.bool_()), ("ema_decay", pa.float64()), ("qc", pa.bool_()), ("qc_lr", pa.float64()),
    ("bn", pa.bool_()), ("lr", pa.float64()), ("epochs_per_stage", pa.int64()), ("path", pa.string()),
])
assert tuple(SCHEMA.names) == FIELDS  # the row builder and the schema must not drift apart


def schema(companions: Iterable[str] = ()) -> pa.Schema:
    """:data:`SCHEMA` with a float column per companion metric."""
    extra = [key for key in companions if key not in FIELDS]
    return pa.schema([*SCHEMA, *((key, pa.float64()) for key in extra)])


def write_table(rows: list[dict[str, Any]], path: str | Path, companions: Iterable[str] = ()) -> Path:
    """Write ``rows`` as Parquet with :func:`schema` (to a temporary file, then renamed)."""
    full = schema(companions)
    table = pa.Table.from_pylist([{k: r.get(k) for k in full.names} for r in rows], schema=full)
    return atomic_write(path, lambda f: pq.write_table(table, f))


def read_table(path: str | Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()
