"""``python -m bench.record``: record the MQAT benchmark table, a grid of real pose trials.

The grid: every plan of weight bits {2, 3, 4, 8} for the quickstart's three modules (64 plans),
each with its six orders and the joint flow (every module at once, the same images in one stage):
448 configurations, trained once each (the main set); then a repeat set, 40 of them trained with
two more seeds each, that measures the noise. Every trial takes the quickstart's settings (task,
FP model, 512 images per stage, stage scores on 500 validation images, final score on all 2,000)
at the ILP seeds' fixed training settings: lr 1e-4, BN re-estimation on, EMA and QC off, no ONNX.

The trials run through the project's own search (``run_search`` with the grid's configurations
as its points), a chunk at a time. After each chunk every finished trial is scored on the test
split and appended to ``bench/tables/pose-grid.jsonl``, one line a trial: the table is the
durable record, so an interrupted recording loses at most its running chunk, and the next run
continues with what the table lacks, over as many sessions as it takes.

Pretraining is seeded but not bit-reproducible across CPUs (the same seed gave ADD 0.387 on an
Intel machine and 0.357 on an AMD EPYC), so the table names its FP model by hash and a run whose
pretraining gives another refuses to add to it (exit 2). Once pretrained, the FP model is kept
beside the table (``pose-grid.fp.pt``, 4.8 MB: out of git, which holds no checkpoints), and
the next runs on this machine start from it. The rendered data's hashes are kept in the meta
too: a machine that renders other images refuses alike.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
TABLE = ROOT / "tables" / "pose-grid.jsonl"
META = ROOT / "tables" / "pose-grid.json"
#: what a replay needs besides the rows, to run the search's own seeding: the sensitivity table
#: and each module's weight count (the ILP's costs), fixed by the FP model
PRIORS = ROOT / "tables" / "pose-grid.priors.json"
#: the FP model every trial of the table starts from (see the module's docstring)
FP_CHECKPOINT = ROOT / "tables" / "pose-grid.fp.pt"
QUICKSTART = ROOT.parent / "configs" / "quickstart.yaml"
MODULES = ("backbone", "fpn", "head")
BITS = (2, 3, 4, 8)
LR = 1e-4
REPEATS = 40          # configurations of the repeat set
REPEAT_SEEDS = 2      # extra seeds each: with the main set's, three per configuration
JOINT = "uniform"


def grid() -> list[dict[str, Any]]:
    """Every configuration of the main set, in a fixed order: plans shuffled (seeded), so that a
    table still being recorded covers the range of compression evenly, each plan's orders together."""
    orders = [">".join(p) for p in itertools.permutations(MODULES)] + [JOINT]
    plans = list(itertools.product(BITS, repeat=len(MODULES)))
    random.Random(0).shuffle(plans)
    return [{"order": order, **{f"bits_{m}": b for m, b in zip(MODULES, bits)}} for bits in plans for order in orders]


def key(point: dict[str, Any]) -> str:
    """A configuration's name in the table: ``fpn>head>backbone 2-4-8``."""
    return f"{point['order']} {'-'.join(str(point[f'bits_{m}']) for m in MODULES)}"


def repeat_set() -> list[dict[str, Any]]:
    """The repeat set's configurations: a seeded sample of the grid (the same every session)."""
    return random.Random(0).sample(grid(), REPEATS)


def todo(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(replicate, point) pairs the table lacks: the main set (replicate 0) first, then the repeats."""
    done = {(r["replicate"], r["config"]) for r in rows}
    wanted = [(0, p) for p in grid()] + [(k, p) for k in range(1, REPEAT_SEEDS + 1) for p in repeat_set()]
    return [(k, p) for k, p in wanted if (k, key(p)) not in done]


def read_table(path: Path = TABLE) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recording_config(output_dir: Path, cache_dir: Path):
    """The quickstart's config with the grid's fixed settings, from the table's FP model once it
    has one."""
    from search.config import SchedulerConfig, load_config

    config = load_config(QUICKSTART)
    # the table's FP model was pretrained before pretraining re-estimated BN statistics: the same
    # pretraining, so that a machine of the table's kind gives the table's model again
    config = replace(config, pretrain=replace(config.pretrain, reestimate_bn=False))
    if FP_CHECKPOINT.is_file():
        config = replace(config, pretrain=replace(config.pretrain, checkpoint=str(FP_CHECKPOINT)))
    space = replace(config.space, order="search", joint=True, weight_bits=BITS, ema=False, qc=False, bn=True,
                    lr=(LR, LR), epochs_per_stage=1)
    search = replace(config.search, ilp_seeds=False, sampler="random", objectives=("accuracy", "compression"),
                     max_concurrent=2, deploy=replace(config.search.deploy, onnx=False), scheduler=SchedulerConfig())
    return replace(config, name="bench-record", output_dir=str(output_dir), cache_dir=str(cache_dir),
                   space=space, search=search, tracking=replace(config.tracking, enabled=False))


def _reports(trial_dir: Path) -> list[dict[str, Any]]:
    result = trial_dir / "result.json"
    return [json.loads(x) for x in result.read_text().splitlines() if x.strip()] if result.is_file() else []


def _stages(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stage report kept short: its name, accuracy (on the stage's validation images),
    compression and seconds; a rerun stage (a retried trial) counts once, the last."""
    stages: dict[int, dict[str, Any]] = {}
    for r in reports:
        if not r.get("final") and "stage" in r:
            stages[int(r["stage"])] = {"stage": int(r["stage"]), "name": r.get("name"),
                                       "accuracy": r.get("accuracy"), "compression": r.get("compression"),
                                       "seconds": r.get("seconds")}
    return [stages[k] for k in sorted(stages)]


def table_row(replicate: int, point: dict[str, Any], row: dict[str, Any], task) -> dict[str, Any]:
    """One line of the table, the test split scored here (no search decision saw it)."""
    from search.held_out import final_model

    trial_dir = Path(row["path"]) if row.get("path") else None
    reports = _reports(trial_dir) if trial_dir else []
    final = reports[-1] if reports and reports[-1].get("final") else {}
    out = {"config": key(point), "replicate": replicate, **point, "seed": row.get("seed"),
           "status": row["status"], "error": row.get("error"),
           "stages": _stages(reports), "val_accuracy": row.get("accuracy"), "val_accuracy_se": row.get("accuracy_se"),
           "test_accuracy": None, "test_accuracy_se": None, "compression": row.get("compression"),
           "model_bytes": row.get("model_bytes"), "seconds": final.get("time_mqat_s"), "test_seconds": None}
    if row.get("test_accuracy") is not None:  # a front model: the search scored it already
        out.update(test_accuracy=row["test_accuracy"], test_accuracy_se=row.get("test_accuracy_se"))
        return out
    model = final_model(trial_dir, task) if trial_dir and row["status"] == "finished" else None
    if model is not None:
        start = time.perf_counter()
        metrics = task.evaluate(model, split="test")
        out.update(test_accuracy=float(metrics["accuracy"]), test_accuracy_se=metrics.get("accuracy_se"),
                   test_seconds=round(time.perf_counter() - start, 2))
    return out


def _fp_hash(prepared) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(prepared.fp_state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def data_hashes(task) -> dict[str, str]:
    """Each split's images, hashed: what the rows were trained and scored on."""
    return {split: hashlib.sha256(task.data(split).images.numpy().tobytes()).hexdigest()[:16]
            for split in ("train", "val", "test")}


class TableMismatch(ValueError):
    """This run cannot add to the table (another FP model or data): bad input, one line, exit 2."""


def _check_meta(prepared, meta: dict[str, Any]) -> dict[str, Any]:
    """The table's FP model and data must be this run's, or the rows would not compare. The FP
    model's scores come from its pretraining (a run from the kept checkpoint has none of its own)."""
    fp = {"hash": _fp_hash(prepared), "val_accuracy": prepared.fp_metrics.get("accuracy"),
          "test_accuracy": prepared.fp_metrics.get("test_accuracy")}
    data = data_hashes(prepared.checked.task)
    if meta.get("fp") and meta["fp"]["hash"] != fp["hash"]:
        raise TableMismatch(f"this run's FP model ({fp}) is not the table's ({meta['fp']}): "
                            f"continue on a machine whose pretraining gives the table's model (or with its "
                            f"{FP_CHECKPOINT.name}), or start a new table")
    if meta.get("data") and meta["data"] != data:
        raise TableMismatch(f"this machine rendered other images ({data}) than the table's ({meta['data']}): "
                            "the rows would not compare; start a new table here")
    return {**meta, "fp": meta.get("fp") or fp, "data": data}


def keep_fp_model(prepared) -> None:
    """Save the FP model beside the table, once (see the module's docstring)."""
    if not FP_CHECKPOINT.is_file():
        import torch

        FP_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
        torch.save(prepared.fp_state, FP_CHECKPOINT)


def save_priors(prepared) -> None:
    checked = prepared.checked
    priors = {"fp_hash": _fp_hash(prepared), "sensitivity": prepared.table.to_dict(),
              "weight_counts": checked.weight_counts, "fp_weights": checked.fp_weights,
              "max_compression": checked.max_compression}
    PRIORS.write_text(json.dumps(priors, indent=1) + "\n")


def _machine() -> str:
    """The CPU the trials ran on (rows of one table may come from several)."""
    import platform

    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _save_meta(meta: dict[str, Any]) -> None:
    META.parent.mkdir(parents=True, exist_ok=True)
    META.write_text(json.dumps(meta, indent=1) + "\n")


def _log(*args) -> None:
    """Print a line now. (Tune pickles the search's callbacks, the logger among them, by reference:
    after the first search of a process ``builtins.print`` is no longer the object Tune finds.)"""
    print(*args, flush=True)


def record(*, chunk: int, limit: int | None, output_dir: Path, cache_dir: Path, log=_log) -> int:
    """Run the configurations the table lacks, a chunk at a time; returns how many were recorded."""
    from search.prepare import check, prepare
    from search.run import run_search

    config = recording_config(output_dir, cache_dir)
    rows = read_table()
    pending = todo(rows)
    if limit is not None:
        pending = pending[:limit]
    meta = json.loads(META.read_text()) if META.is_file() else {
        "grid": {"modules": list(MODULES), "bits": list(BITS), "orders": "six orders and the joint flow (uniform)",
                 "configurations": len(grid()), "repeat_set": REPEATS, "repeat_seeds": REPEAT_SEEDS},
        "settings": {"config": "configs/quickstart.yaml", "lr": LR, "bn": True, "ema": False, "qc": False,
                     "onnx": False, "images_per_epoch": config.search.stage.images_per_epoch,
                     "stage_eval_images": config.search.stage.eval_images, "max_concurrent": 2},
        "seconds_note": "wall-clock seconds on 2 cores, two trials at a time; other work sometimes shared the cores",
        "command": "python -m bench.record", "sessions": []}
    log(f"[record] table {TABLE}: {len(rows)} rows; {len(todo(rows))} to go; this run: {len(pending)}")
    prepared = prepare(config, check(config, progress=False), progress=False, log=log)  # cached after once
    meta = _check_meta(prepared, meta)
    keep_fp_model(prepared)
    meta.setdefault("machines", [])
    if _machine() not in meta["machines"]:
        meta["machines"].append(_machine())
    save_priors(prepared)
    task = prepared.checked.task
    recorded = 0
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        began = time.time()
        # each chunk its own search seed, from the table's size: every trial seed is recorded
        seed = len(rows) + recorded
        run = replace(config, search=replace(config.search, seed=seed, num_samples=len(part)))
        result = run_search(run, points=[{**p, "lr": LR} for _, p in part], progress=False, log=log)
        waiting: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for k, p in part:  # a repeat's two seeds may share a chunk
            waiting.setdefault(key(p), []).append((k, p))
        lines = []
        for row in result.rows:
            order, bits = row.get("order"), json.loads(row["plan"])["weight_bits"]
            name = f"{order} {'-'.join(str(bits[m]) for m in MODULES)}" if bits else None
            if waiting.get(name):
                lines.append(table_row(*waiting[name].pop(0), row, task))
        with TABLE.open("a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        recorded += len(lines)
        wall = time.time() - began
        meta.setdefault("sessions", []).append({"started": time.strftime("%Y-%m-%d %H:%M", time.localtime(began)),
                                                "trials": len(lines), "wall_s": round(wall, 1),
                                                "machine": _machine()})
        meta["wall_s_total"] = round(sum(s["wall_s"] for s in meta["sessions"]), 1)
        meta["rows"] = len(rows) + recorded
        _save_meta(meta)
        shutil.rmtree(result.path, ignore_errors=True)  # checkpoints: the table keeps what matters
        log(f"[record] {len(rows) + recorded} rows; chunk of {len(lines)} in {wall / 60:.1f} min "
            f"({wall / max(1, len(lines)):.0f} s a trial); {len(todo(read_table()))} to go")
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=24, help="configurations per search (default 24)")
    parser.add_argument("--limit", type=int, help="record at most this many configurations, then stop")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "record")
    parser.add_argument("--cache-dir", type=Path, default=ROOT.parent / "data",
                        help="rendered data and the FP model (default: the quickstart's data/)")
    args = parser.parse_args(argv)
    if args.chunk < 1 or (args.limit is not None and args.limit < 1):
        print("bench.record: error: --chunk and --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        record(chunk=args.chunk, limit=args.limit, output_dir=args.output_dir, cache_dir=args.cache_dir)
    except TableMismatch as err:  # another FP model than the table's: nothing appended
        print(f"bench.record: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
