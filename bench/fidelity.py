"""5. Fidelity: do the papers' claims hold here? Each arm trained with several seeds at an equal
fine-tuning budget and scored on the held-out test split, mean and spread side by side.

The arms (on the quickstart's cached FP model; ``--quick``: the tiny task):
* FP; PTQ (calibration only) against QAT at W8A8 and W4A8;
* gradated orders (sensitive module first, the paper's fpn>head>backbone) against joint
  training at 4-4-4 and 4-2-4, and a 2-bit FPN quantized first against last;
* LSQ against EMA, QC, EMA+QC and BN re-estimation at uniform 4 and 3 bits. EMA only watches
  training, so LSQ and EMA (and the post-training fixes) come from the same runs: a paired
  comparison, as the papers make it.

A claim is *reproduced* when the mean difference exceeds twice its standard error (over the
seeds, paired where the runs are shared), *not reproduced* when it is that far the other way,
and *within noise* otherwise.
"""
from __future__ import annotations

import copy
import functools
import math
import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .timing import row

SECTION = "fidelity"
BACKBONE, FPN, HEAD = "backbone", "fpn", "head"


@dataclass(frozen=True)
class Arm:
    """One trained configuration: bits (backbone, fpn, head), order (None: joint), finalisers."""

    name: str
    bits: tuple[int, int, int]
    order: str | None = None  # "sensitive", "paper", "fpn-last" or None (joint)
    act_bits: int = 8
    fixes: bool = False  # also score BN re-estimation, QC and EMA+QC from the same run
    quantize_first_last: bool = False  # quantize the network's first and last layers too
    shared_inputs: bool = False  # readers of one tensor share one input quantizer (mqat.input_groups)


ARMS = (
    Arm("W8A8 QAT", (8, 8, 8)),
    Arm("4-4-4 joint", (4, 4, 4), fixes=True),
    Arm("4-4-4 sensitive-first", (4, 4, 4), "sensitive"),
    Arm("4-4-4 fpn>head>backbone", (4, 4, 4), "paper"),
    Arm("4-2-4 joint", (4, 2, 4)),
    Arm("4-2-4 sensitive-first", (4, 2, 4), "sensitive"),
    Arm("4-2-4 fpn>head>backbone (2-bit FPN first)", (4, 2, 4), "paper"),
    Arm("4-2-4 head>backbone>fpn (2-bit FPN last)", (4, 2, 4), "fpn-last"),
    Arm("3-3-3 joint", (3, 3, 3), fixes=True),
    Arm("2-6-8 joint", (2, 6, 8)),
    Arm("2-6-8 joint, first and last layers quantized", (2, 6, 8), quantize_first_last=True),
)
ORDERS = {"paper": [FPN, HEAD, BACKBONE], "fpn-last": [HEAD, BACKBONE, FPN]}


@functools.lru_cache(maxsize=1)
def _context(quick: bool, task: str = "pose"):
    """The task, its FP weights and sensitivity table, built once per worker process: the
    quickstart's (pose), configs/detect.yaml's or configs/yolo.yaml's, each at its own budget."""
    from search.config import config_from_dict
    from search.prepare import check, prepare

    from . import searches

    data = searches.TASK_CONFIGS[task](quick)
    config = config_from_dict({**searches.module_level(data), "tracking": {"enabled": False}})
    prepared = prepare(config, check(config, progress=False), progress=False, log=lambda *_: None)
    return config, prepared


def _plan(bits, act_bits, modules=(BACKBONE, FPN, HEAD)):
    """Bits by module, in the network's order (pose: backbone, fpn, head)."""
    import mqat

    return mqat.BitPlan(dict(zip(modules, bits, strict=True)), act_bits=act_bits)


def _order(arm: Arm, plan, table):
    from spaces.seeds import sensitive_first

    if arm.order is None:
        return None
    return sensitive_first(plan, table) if arm.order == "sensitive" else ORDERS[arm.order]


def _score(task, model) -> float:
    return task.evaluate(model, split="test")["accuracy"]


def seed_lr(config) -> float:
    """The learning rate the search's seed points use: the middle of the space's range."""
    low, high = config.space.lr
    return math.sqrt(low * high)


def _trained(quick: bool, arm: Arm, seed: int, lr: float | None = None, task_name: str = "pose") -> dict[str, float]:
    """One run of an arm: the test accuracy of every model it yields."""
    import torch

    import mqat

    torch.set_num_threads(1)
    config, prepared = _context(quick, task_name)
    task = prepared.checked.task
    search = config.search
    model = task.build_model()
    model.load_state_dict(prepared.fp_state)
    plan = _plan(arm.bits, arm.act_bits, task.module_map.names)
    module_map = mqat.ModuleMap(task.module_map.prefixes) if arm.quantize_first_last else task.module_map
    epochs = 3  # one epoch per module: the joint arm gets the same budget in one stage
    steps = epochs * task.steps_per_epoch(search.stage.images_per_epoch)
    calibration = task.train_batches(search.sensitivity_batches * 2)  # fitted on training images only
    groups = mqat.input_groups(model, calibration[0][0][:1]) if arm.shared_inputs else None
    result = mqat.run_mqat(
        model, plan, module_map, order=_order(arm, plan, prepared.table),
        train_epoch=functools.partial(task.train_epoch, images=search.stage.images_per_epoch),
        evaluate=lambda m: {"accuracy": 0.0},  # scored below, on the test split
        ema=mqat.EMAConfig(decay=0.99, warmup_steps=max(1, round(0.05 * steps))),
        calibration_batches=calibration, seed=seed, shared_inputs=groups,
        optimizer=lambda params: torch.optim.Adam(params, lr=lr or seed_lr(config)))
    raw, ema = model, result.model
    out = {"LSQ": _score(task, raw), "EMA": _score(task, ema)}
    if arm.fixes:
        bn_batches = task.train_batches(8)
        out["BN"] = _score(task, mqat.reestimate_bn(copy.deepcopy(raw), bn_batches))
        out["EMA+BN"] = _score(task, mqat.reestimate_bn(copy.deepcopy(ema), bn_batches))
        for name, start in (("QC", raw), ("EMA+QC", ema)):
            mqat.seed_everything(mqat.derive_seed(seed, 99))
            out[name] = _qc_score(task, copy.deepcopy(start), search.stage.images_per_epoch)
    return out


def _qc_score(task, model, images) -> float:
    import mqat

    mqat.train_qc(model, mqat.QCConfig(lr=1e-3), functools.partial(task.train_epoch, images=images))
    return _score(task, model)


def _ptq(quick: bool, bits: int, seed: int, task_name: str = "pose") -> float:
    """Calibration only, no training."""
    import torch

    import mqat

    torch.set_num_threads(1)
    config, prepared = _context(quick, task_name)
    task = prepared.checked.task
    model = task.build_model()
    model.load_state_dict(prepared.fp_state)
    mqat.quantize_(model, _plan((bits,) * 3, 8, task.module_map.names), task.module_map)
    mqat.calibrate(model, task.train_batches(config.search.sensitivity_batches * 2), seed=seed)
    return _score(task, model)


def _fp(quick: bool, task_name: str = "pose") -> float:
    _config, prepared = _context(quick, task_name)
    model = prepared.checked.task.build_model()
    model.load_state_dict(prepared.fp_state)
    return _score(prepared.checked.task, model)


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def verdict(a: list[float], b: list[float], *, paired: bool) -> str:
    """Whether ``a`` beats ``b``: the mean difference against twice its standard error."""
    if paired:
        diffs = [x - y for x, y in zip(a, b)]
        mean, sd = _stats(diffs)
        se = sd / math.sqrt(len(diffs))
    else:
        mean = statistics.mean(a) - statistics.mean(b)
        se = math.sqrt(_stats(a)[1] ** 2 / len(a) + _stats(b)[1] ** 2 / len(b))
    if mean > 2 * se:
        return "reproduced"
    if mean < -2 * se:
        return "not reproduced"
    return "within noise"


#: (claim, arm A, model of A, arm B, model of B): "A beats (or matches) B". Orders are compared
#: on the raw (LSQ) models, so the order is the only difference; the EMA, BN and QC claims on
#: models of the same runs (paired).
CLAIMS = (
    ("QAT beats PTQ at W8A8", "W8A8 QAT", "LSQ", "PTQ W8A8", None),
    ("QAT beats PTQ at W4A8", "4-4-4 joint", "LSQ", "PTQ W4A8", None),
    ("gradated (fpn>head>backbone) beats joint at 4-4-4", "4-4-4 fpn>head>backbone", "LSQ", "4-4-4 joint", "LSQ"),
    ("gradated (sensitive first) beats joint at 4-4-4", "4-4-4 sensitive-first", "LSQ", "4-4-4 joint", "LSQ"),
    ("gradated (fpn>head>backbone) beats joint at 4-2-4", "4-2-4 fpn>head>backbone (2-bit FPN first)", "LSQ",
     "4-2-4 joint", "LSQ"),
    ("gradated (sensitive first) beats joint at 4-2-4", "4-2-4 sensitive-first", "LSQ", "4-2-4 joint", "LSQ"),
    ("a 2-bit FPN quantized first beats last", "4-2-4 fpn>head>backbone (2-bit FPN first)", "LSQ",
     "4-2-4 head>backbone>fpn (2-bit FPN last)", "LSQ"),
    ("EMA beats LSQ at 4 bits", "4-4-4 joint", "EMA", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats LSQ at 4 bits", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats EMA at 4 bits", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "EMA"),
    ("QC beats BN re-estimation at 4 bits", "4-4-4 joint", "QC", "4-4-4 joint", "BN"),
    ("EMA beats LSQ at 3 bits", "3-3-3 joint", "EMA", "3-3-3 joint", "LSQ"),
    ("EMA+QC beats LSQ at 3 bits", "3-3-3 joint", "EMA+QC", "3-3-3 joint", "LSQ"),
    ("EMA+QC beats EMA at 3 bits", "3-3-3 joint", "EMA+QC", "3-3-3 joint", "EMA"),
    ("QC beats BN re-estimation at 3 bits", "3-3-3 joint", "QC", "3-3-3 joint", "BN"),
    ("full-precision first and last layers beat quantized ones at 2-6-8", "2-6-8 joint", "LSQ",
     "2-6-8 joint, first and last layers quantized", "LSQ"),
    ("a 2-bit FPN quantized first matches FP", "4-2-4 fpn>head>backbone (2-bit FPN first)", "LSQ", "FP", None),
)


def _progress(futures) -> None:
    """One line per finished run, so a long bench shows it is alive."""
    import sys
    import time
    from concurrent.futures import as_completed

    start = time.perf_counter()
    for done, _ in enumerate(as_completed(futures), 1):
        print(f"[fidelity] {done}/{len(futures)} runs done, {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)


def run(quick: bool = False) -> list[dict]:
    return run_arms(quick, ARMS, CLAIMS, section=SECTION)


def run_arms(quick: bool, arms, claims, *, section: str, task_name: str = "pose") -> list[dict]:
    """Train every arm with each seed (two processes), score the models on the test split, and
    judge ``claims``: rows of means and spreads, then a row per claim."""
    seeds = [0, 1] if quick else [0, 1, 2]
    workers = max(1, min(2, os.cpu_count() or 1))
    # spawn, not Linux's fork: the earlier sections leave threads running in this process (Ray's
    # client, tqdm's monitor, torch's pool), and a forked child inherits their locks held: both
    # workers once hung in a futex inside Module.to (python -m bench --quick, 12 minutes)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        fp = pool.submit(_fp, quick, task_name).result()  # prepares (and caches) FP weights and sensitivity
        ptq = {bits: [pool.submit(_ptq, quick, bits, s, task_name) for s in seeds] for bits in (8, 4)}
        runs = {arm.name: [pool.submit(_trained, quick, arm, s, None, task_name) for s in seeds] for arm in arms}
        _progress([f for futures in (*ptq.values(), *runs.values()) for f in futures])
        scores = {f"PTQ W{bits}A8": {None: [f.result() for f in futures]} for bits, futures in ptq.items()}
        for name, futures in runs.items():
            results = [f.result() for f in futures]
            scores[name] = {model: [r[model] for r in results] for model in results[0]}
    scores["FP"] = {None: [fp] * len(seeds)}
    rows = [row(section, "FP (test split)", fp, note="full precision")]
    for name, by_model in scores.items():
        if name == "FP":
            continue
        for model, values in by_model.items():
            mean, spread = _stats(values)
            label = name if model is None else f"{name}: {model}"
            rows.append(row(section, label, mean, ratio=mean / fp if fp else None, spread=spread,
                            values=[round(v, 4) for v in values], note=f"{len(values)} seeds, x FP"))
    return rows + claim_rows(scores, claims, section)


def claim_rows(scores: dict[str, dict], claims=CLAIMS, section: str = SECTION) -> list[dict]:
    """A row per claim: the mean difference A - B and its verdict."""
    rows = []
    for claim, arm_a, model_a, arm_b, model_b in claims:
        a, b = scores[arm_a][model_a], scores[arm_b][model_b]
        if arm_b == "FP":  # "matches": not below FP by more than twice A's standard error
            mean_a, sd_a = _stats(a)
            result = "reproduced" if mean_a >= b[0] - 2 * sd_a / math.sqrt(len(a)) else "not reproduced"
        else:
            result = verdict(a, b, paired=arm_a == arm_b)
        diff = statistics.mean(a) - statistics.mean(b)
        rows.append(row(section, f"claim: {claim}", diff, note=result))
    return rows
