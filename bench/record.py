"""``python -m bench.record``: record the MQAT benchmark table, a grid of real pose trials.

The grid: every plan of weight bits {2, 3, 4, 8} for the quickstart's three modules (64 plans),
each with its six orders and the joint flow (every module at once, the same images in one stage):
448 configurations, trained once each (the main set, replicate 0); then a repeat set, 40 of them
trained with two more seeds (replicates 1 and 2), that measures the noise. Every configuration
trains as a trial of the search would (``trainables.trainable.run_flow``: the quickstart's task
and stage settings, 512 images a stage, stage scores on 500 validation images, the final score
on all 2,000) at the ILP seeds' fixed training settings: lr 1e-4, BN re-estimation on, EMA and QC
off, no ONNX; then its model is scored on the test split, which no decision saw.

**Trained stage prefixes are shared.** All configurations of a replicate share its seed, and a
stage's training depends only on that seed, the stage's index and the modules quantized so far
with their bits (``run_mqat`` reseeds every stage; later modules' bits are not read before their
stage), so configurations that begin alike (fpn at 2 bits, then head at 4, ...) train those
stages once and resume from them (``run_mqat(resume=...)``): the main set's 384 ordered
configurations take 12 first, 96 second and 384 third stages (492 where 1,152 were trained
before), its 64 joint flows one (three-epoch) stage each. Configurations sharing a prefix share
its noise too (common random numbers); the repeat set's other seeds measure that noise. A row's
``seconds`` is what an uninterrupted trial would have taken: its stages' seconds (each measured
when it was trained) plus its own final BN re-estimation and scoring.

The work is cut into jobs, each the configurations of one replicate that begin with the same
stage (or a few joint flows), run by worker processes of one thread each; a finished job's rows
are appended to ``pose-grid.jsonl`` (one line a configuration, with the CPU it ran on) and the
meta updated, so an interrupted recording loses at most its running jobs, and the next run
continues with what the table lacks, over as many sessions and machines as it takes.

The FP model is part of the table (``pose-grid.fp.pt``, committed beside it: seeded pretraining
is not bit-reproducible across CPUs, so no other machine could make it again); the meta names its
hash and a run with another refuses (exit 2). The rendered data's hashes are in the meta too
(rendering is bit-stable across CPUs: ``trainables.pose.render``); other images are refused alike.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
TABLES = ROOT / "tables"
NAME = "pose-grid"
QUICKSTART = ROOT.parent / "configs" / "quickstart.yaml"
MODULES = ("backbone", "fpn", "head")
BITS = (2, 3, 4, 8)
LR = 1e-4
REPEATS = 40          # configurations of the repeat set
REPEAT_SEEDS = 2      # extra seeds each: with the main set's, three per configuration
JOINT = "uniform"
JOINT_PER_JOB = 8     # joint flows a job runs (ordered configurations go by shared first stage)


@dataclass(frozen=True)
class Paths:
    """The table's files: rows, meta, the search's priors (sensitivity and weight counts, what a
    replay needs to seed as the search does) and the FP model every row starts from."""

    folder: Path = TABLES

    @property
    def table(self) -> Path:
        return self.folder / f"{NAME}.jsonl"

    @property
    def meta(self) -> Path:
        return self.folder / f"{NAME}.json"

    @property
    def priors(self) -> Path:
        return self.folder / f"{NAME}.priors.json"

    @property
    def fp_checkpoint(self) -> Path:
        return self.folder / f"{NAME}.fp.pt"


def grid() -> list[dict[str, Any]]:
    """Every configuration of the main set, in a fixed order: plans shuffled (seeded), each
    plan's orders together."""
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


def replicate_seed(replicate: int) -> int:
    """Every configuration of a replicate trains from this seed (so that prefixes are shared)."""
    return replicate


def todo(rows: list[dict[str, Any]], replicates: tuple[int, ...] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(replicate, point) pairs the table lacks: the main set (replicate 0) first, then the repeats."""
    done = {(r["replicate"], r["config"]) for r in rows}
    wanted = [(0, p) for p in grid()] + [(k, p) for k in range(1, REPEAT_SEEDS + 1) for p in repeat_set()]
    return [(k, p) for k, p in wanted if (k, key(p)) not in done and (replicates is None or k in replicates)]


def prefixes(point: dict[str, Any]) -> list[tuple[tuple[str, int], ...]]:
    """The stage prefixes a configuration trains, shortest first: ``((fpn, 2),)``, then
    ``((fpn, 2), (head, 4))``...; the joint flow's one stage is its own (the whole plan)."""
    bits = [(m, point[f"bits_{m}"]) for m in MODULES]
    if point["order"] == JOINT:
        return [(("joint", 0), *bits)]
    steps = [(m, point[f"bits_{m}"]) for m in point["order"].split(">")]
    return [tuple(steps[:k + 1]) for k in range(len(steps))]


def stage_trainings(pending: list[tuple[int, dict[str, Any]]]) -> int:
    """How many stages recording ``pending`` trains with prefixes shared (a joint flow's one)."""
    return len({(k, prefix) for k, p in pending for prefix in prefixes(p)})


def jobs(pending: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """``pending`` cut into jobs: the ordered configurations of a replicate that share their first
    stage (in an order where each shares its longest prefix with the one before), and joint
    flows a few at a time; jobs that begin with other modules and bits interleaved."""
    groups: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    joint: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for k, p in pending:
        if p["order"] == JOINT:
            joint.setdefault(k, []).append((k, p))
        else:
            groups.setdefault((k, prefixes(p)[0]), []).append((k, p))
    out = [sorted(g, key=lambda item: prefixes(item[1])[-1]) for _, g in sorted(groups.items())]
    random.Random(0).shuffle(out)  # a table still being recorded covers the range of compression
    for k, points in sorted(joint.items()):
        out += [points[i:i + JOINT_PER_JOB] for i in range(0, len(points), JOINT_PER_JOB)]
    return sorted(out, key=lambda job: job[0][0])  # replicate 0 first


def read_table(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recording_config(output_dir: Path, cache_dir: Path, paths: Paths = Paths()):
    """The quickstart's config with the grid's fixed settings, from the table's FP model once it
    has one."""
    from search.config import load_config

    config = load_config(QUICKSTART)
    if paths.fp_checkpoint.is_file():
        config = replace(config, pretrain=replace(config.pretrain, checkpoint=str(paths.fp_checkpoint)))
    space = replace(config.space, granularity="module", order="search", joint=True, weight_bits=BITS, ema=False,
                    qc=False, bn=True, lr=(LR, LR), epochs_per_stage=1)
    # the table was recorded with an input quantizer per layer (the default until 2026-12-06): a resumed
    # recording trains its rows as the others were
    stage = replace(config.search.stage, share_inputs=False)
    search = replace(config.search, ilp_seeds=False, sampler="random", objectives=("accuracy", "compression"),
                     max_concurrent=2, deploy=replace(config.search.deploy, onnx=False), budget_trials=None,
                     stage=stage)
    return replace(config, name="bench-record", output_dir=str(output_dir), cache_dir=str(cache_dir),
                   space=space, search=search, tracking=replace(config.tracking, enabled=False))


def trial_point(replicate: int, point: dict[str, Any]) -> dict[str, Any]:
    """The search-space point a configuration is, with the grid's fixed settings."""
    return {**point, "act_bits": 8, "ema": False, "qc": False, "bn": True, "lr": LR, "epochs_per_stage": 1,
            "seed": replicate_seed(replicate)}


class Recorder:
    """Trains configurations on one task, sharing trained stage prefixes (see the module's
    docstring); one per worker process."""

    def __init__(self, task, fp_state, stage):
        self.task, self.fp_state, self.stage = task, fp_state, stage
        self.trained: dict[tuple[int, tuple], Any] = {}  # (replicate, prefix) -> FlowState after it

    def row(self, replicate: int, point: dict[str, Any]) -> dict[str, Any]:
        """One line of the table: the configuration trained (resuming from its longest trained
        prefix), scored on validation and then on the test split."""
        from spaces import trial_settings
        from trainables.trainable import run_flow

        out = {"config": key(point), "replicate": replicate, **point, "seed": replicate_seed(replicate),
               "status": "finished", "error": None, "machine": machine()}
        try:
            settings = trial_settings(trial_point(replicate, point), MODULES)
            steps = prefixes(point)
            shared = next((k for k in range(len(steps) - 1, 0, -1) if (replicate, steps[k - 1]) in self.trained), 0)

            def keep(result) -> None:
                if result.state is not None and result.stage < len(steps) - 1:
                    self.trained[(replicate, steps[result.stage])] = result.state

            model = self.task.build_model()
            model.load_state_dict(self.fp_state)
            resume = self.trained.get((replicate, steps[shared - 1])) if shared else None
            start = time.perf_counter()
            result = run_flow(self.task, self.stage, settings, model, on_stage=keep, resume=resume)
            elapsed = time.perf_counter() - start
            trained_now = sum(s.seconds for s in result.stages[shared:])
            test_start = time.perf_counter()
            test = self.task.evaluate(result.model, split="test")
            out.update(stages=[{"stage": s.stage, "name": s.name, "accuracy": s.accuracy,
                                "compression": s.compression, "seconds": s.seconds} for s in result.stages],
                       val_accuracy=result.final["accuracy"], val_accuracy_se=result.metrics.get("accuracy_se"),
                       test_accuracy=float(test["accuracy"]), test_accuracy_se=test.get("accuracy_se"),
                       compression=result.stages[-1].compression, model_bytes=result.stages[-1].model_bytes,
                       seconds=sum(s.seconds for s in result.stages) + elapsed - trained_now,
                       test_seconds=round(time.perf_counter() - test_start, 2), stages_shared=shared)
        except Exception as err:  # noqa: BLE001 - a failing configuration fails alone, recorded
            out.update(status="failed", error=f"{type(err).__name__}: {err}".splitlines()[0])
        return out


_RECORDER: Recorder | None = None


def _start_worker(config, fp_state) -> None:
    """A worker process: one thread, as a trial of the search gets one CPU."""
    import torch

    global _RECORDER
    torch.set_num_threads(1)
    _RECORDER = Recorder(config.task_instance(progress=False), fp_state, config.search.stage)


def _run_job(job: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict[str, Any]], float]:
    assert _RECORDER is not None
    began = time.time()
    rows = [_RECORDER.row(k, p) for k, p in job]
    _RECORDER.trained.clear()  # the next job begins with another stage
    return rows, began


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
                            f"record from the table's {NAME}.fp.pt, or start a new table")
    if meta.get("data") and meta["data"] != data:
        raise TableMismatch(f"this machine rendered other images ({data}) than the table's ({meta['data']}): "
                            "the rows would not compare")
    return {**meta, "fp": meta.get("fp") or fp, "data": data}


def keep_fp_model(prepared, paths: Paths = Paths()) -> None:
    """Save the FP model beside the table, once (see the module's docstring)."""
    if not paths.fp_checkpoint.is_file():
        import torch

        paths.folder.mkdir(parents=True, exist_ok=True)
        torch.save(prepared.fp_state, paths.fp_checkpoint)


def save_priors(prepared, paths: Paths = Paths()) -> None:
    checked = prepared.checked
    priors = {"fp_hash": _fp_hash(prepared), "sensitivity": prepared.table.to_dict(),
              "weight_counts": checked.weight_counts, "fp_weights": checked.fp_weights,
              "max_compression": checked.max_compression}
    paths.priors.write_text(json.dumps(priors, indent=1) + "\n")


def machine() -> str:
    """The CPU the trials ran on (rows of one table may come from several)."""
    import platform

    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _code_version() -> str:
    """The commit of the code that records (its working tree, if it has uncommitted changes)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _new_meta(config) -> dict[str, Any]:
    return {"grid": {"modules": list(MODULES), "bits": list(BITS), "orders": "six orders and the joint flow (uniform)",
                     "configurations": len(grid()), "repeat_set": REPEATS, "repeat_seeds": REPEAT_SEEDS},
            "settings": {"config": "configs/quickstart.yaml", "lr": LR, "bn": True, "ema": False, "qc": False,
                         "onnx": False, "share_inputs": config.search.stage.share_inputs,
                         "images_per_epoch": config.search.stage.images_per_epoch,
                         "stage_eval_images": config.search.stage.eval_images,
                         "seeds": "replicate k trains every configuration from seed k; stage prefixes shared"},
            "seconds_note": "seconds of one thread, two workers on a 2-core machine; a row's seconds are its "
                            "stages' (each measured when trained) plus its own final BN re-estimation and scoring",
            "command": "python -m bench.record", "sessions": []}


def _save_meta(meta: dict[str, Any], paths: Paths) -> None:
    paths.folder.mkdir(parents=True, exist_ok=True)
    paths.meta.write_text(json.dumps(meta, indent=1) + "\n")


def _log(*args) -> None:
    print(*args, flush=True)


def commit(paths: Paths, message: str, log=_log) -> None:
    """Commit the table's files (and nothing else) to the git checkout that holds them: every job
    recorded is kept even if the session that recorded it ends. A failed commit (another git
    command holding the index) is said and left to the next job's."""
    files = [str(f) for f in (paths.table, paths.meta, paths.priors, paths.fp_checkpoint) if f.is_file()]
    for command in (["git", "add", "--", *files], ["git", "commit", "-q", "-m", message, "--", *files]):
        done = subprocess.run(command, cwd=paths.folder, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log(f"[record] {' '.join(command[:2])} failed: {(done.stderr or done.stdout).strip()[:200]}")
            return


def record(*, workers: int, limit: int | None, replicates: tuple[int, ...] | None, output_dir: Path,
           cache_dir: Path, paths: Paths = Paths(), commits: bool = False, log=_log) -> int:
    """Record the configurations the table lacks, job by job; returns how many were recorded."""
    import multiprocessing

    from search.prepare import check, prepare

    config = recording_config(output_dir, cache_dir, paths)
    rows = read_table(paths.table)
    pending = todo(rows, replicates)[:limit]
    meta = json.loads(paths.meta.read_text()) if paths.meta.is_file() else _new_meta(config)
    log(f"[record] table {paths.table}: {len(rows)} rows; {len(todo(rows))} to go; this run: {len(pending)} "
        f"configurations, {stage_trainings(pending)} stage trainings")
    prepared = prepare(config, check(config, progress=False), progress=False, log=log)  # cached after once
    meta = _check_meta(prepared, meta)
    keep_fp_model(prepared, paths)
    save_priors(prepared, paths)
    meta.setdefault("machines", [])
    if machine() not in meta["machines"]:
        meta["machines"].append(machine())
    meta["code"] = sorted(set(meta.get("code", [])) | {_code_version()})
    _save_meta(meta, paths)
    recorded = 0
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(config, prepared.fp_state)) as pool:
        for lines, began in pool.imap_unordered(_run_job, jobs(pending)):
            with paths.table.open("a") as f:
                for line in lines:
                    f.write(json.dumps(line) + "\n")
            recorded += len(lines)
            wall = time.time() - began
            meta["sessions"].append({"started": time.strftime("%Y-%m-%d %H:%M", time.localtime(began)),
                                     "trials": len(lines), "wall_s": round(wall, 1), "machine": machine()})
            meta["rows"] = len(rows) + recorded
            _save_meta(meta, paths)
            failed = sum(line["status"] != "finished" for line in lines)
            log(f"[record] {len(rows) + recorded} rows; a job of {len(lines)} ({failed} failed) in {wall / 60:.1f} "
                f"min; {len(todo(read_table(paths.table)))} to go")
            if commits:
                commit(paths, f"bench.record: the referee table holds {len(rows) + recorded} rows "
                              f"({len(lines)} more, {machine()})", log)
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one thread each (default 2)")
    parser.add_argument("--limit", type=int, help="record at most this many configurations, then stop")
    parser.add_argument("--replicates", type=int, nargs="+", help="only these replicates (0: the main set)")
    parser.add_argument("--tables", type=Path, default=TABLES, help="the table's folder (default bench/tables)")
    parser.add_argument("--commit", action="store_true", help="commit the table's files after every job")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "record")
    parser.add_argument("--cache-dir", type=Path, default=ROOT.parent / "data",
                        help="rendered data (default: the quickstart's data/)")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.limit is not None and args.limit < 1):
        print("bench.record: error: --workers and --limit must be at least 1", file=sys.stderr)
        return 2
    if args.replicates and not set(args.replicates) <= set(range(REPEAT_SEEDS + 1)):
        print(f"bench.record: error: --replicates must be among 0..{REPEAT_SEEDS}, but got {args.replicates}",
              file=sys.stderr)
        return 2
    try:
        record(workers=args.workers, limit=args.limit, replicates=tuple(args.replicates) if args.replicates else None,
               output_dir=args.output_dir, cache_dir=args.cache_dir, paths=Paths(args.tables), commits=args.commit)
    except TableMismatch as err:  # another FP model or other images than the table's: nothing appended
        print(f"bench.record: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
