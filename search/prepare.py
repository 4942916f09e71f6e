"""Everything the driver does before Ray starts: checks, FP weights, sensitivity, ILP seeds.

``check`` only reads (the config, the model's shape, a checkpoint): bad input fails there,
before anything is written or started. ``prepare`` then pretrains (or reuses) the FP model,
measures module sensitivity and solves the ILP for the configured targets, each cached by a
hash of what determines it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mqat
from spaces import ilp_targets, seed_points
from tracking.objectives import on_export
from trainables.pretrain import baseline_problem, cache_key, cached_checkpoint, load_model, load_state_dict, pretrain
from trainables.tasks import Task, example_input

from .config import Config, ConfigError
from .methods import METHODS

#: an ILP plan's compression lies within this much above its target where a plan there exists
TARGET_WINDOW = 0.3


@dataclass
class Checked:
    task: Task
    weight_counts: dict[str, int]  # per unit (module, or group at a finer granularity), the weights its bits apply to
    max_compression: float
    fp_weights: int = 0  # weights of layers kept at full precision whatever the plan (first, last)
    module_map: mqat.ModuleMap | None = None  # the task's, split into the space's units (space.granularity)

    @property
    def units_map(self) -> mqat.ModuleMap:
        """The module map plans are made for: the task's, or its groups."""
        return self.module_map or self.task.module_map


@dataclass
class Prepared:
    checked: Checked
    fp_state: dict
    fp_metrics: dict[str, Any]
    table: mqat.SensitivityTable
    plans: dict[float, mqat.BitPlan]
    seeds: list[dict[str, Any]]


def check(config: Config, *, progress: bool = True) -> Checked:
    """Validate what a config implies without writing anything; ConfigError on bad input."""
    task = config.task_instance(progress=progress)
    try:
        model = task.build_model()
        module_counts, _ = weight_counts(model, task.module_map)
        module_map = mqat.grouped(model, task.module_map, config.space.granularity)
        counts, fp_weights = weight_counts(model, module_map)
    except ValueError as err:  # a layer in no module or in two: the task's module map is bad input
        raise ConfigError(f"task {config.task_name!r}: its module map does not fit its model: {err}") from None
    empty = [m for m, n in module_counts.items() if n == 0]
    if empty:
        kept = " (its layers are the network's first or last, kept at full precision: fp_first_last)" \
            if task.module_map.fp_first_last else ""
        raise ConfigError(f"task {config.task_name!r}: module(s) {empty} hold no quantized weight{kept}, so their "
                          f"bits would change nothing: give them other layers (mqat layers lists them) or merge them")
    choices = list(config.space.weight_bits)
    top = mqat.max_compression(counts, choices, fp_weights=fp_weights)
    for target in config.search.targets:
        if target > top * (1 + 1e-12):
            raise ConfigError(f"search.targets: {target:g}x is unreachable: the highest reachable "
                              f"with bits {choices} is {top:.2f}x")
    try:
        if config.pretrain.checkpoint:
            load_model(task, config.pretrain.checkpoint)
        else:
            cached_checkpoint(task, config.pretrain, cache_dir=config.cache_dir)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return Checked(task, counts, top, fp_weights, module_map)


def with_units(config: Config, checked: Checked) -> Config:
    """The config with its space's units filled in from the model (the groups or layers the
    ``bits_*`` parameters name, at a granularity finer than the module)."""
    from dataclasses import replace

    units = checked.units_map.units if checked.units_map.groups else ()
    return replace(config, space=replace(config.space, units=units))


def weight_counts(model, module_map: mqat.ModuleMap) -> tuple[dict[str, int], int]:
    """Per unit (module, or group), the weights its bits apply to; and the weights of the layers
    kept at full precision (``fp_first_last``), which every plan's compression carries at 32 bits."""
    fixed = module_map.fixed_fp_layers(model)
    counts, fp_weights = dict.fromkeys(module_map.units, 0), 0
    for module, layers in module_map.layers(model).items():
        for name, layer in layers:
            if name in fixed:
                fp_weights += layer.weight.numel()
            else:
                counts[module_map.unit_of(name, module)] += layer.weight.numel()
    return counts, fp_weights


def _sensitivity(config: Config, task: Task, module_map: mqat.ModuleMap, checkpoint: Path,
                 model) -> mqat.SensitivityTable:
    bits = tuple(config.space.weight_bits)
    source = cache_key(task, config.pretrain) if not config.pretrain.checkpoint else \
        f"{Path(config.pretrain.checkpoint).resolve()}:{checkpoint.stat().st_mtime_ns}"
    act_bits = config.space.top_act_bits
    payload = json.dumps({"fp": source, "bits": bits, "batches": config.search.sensitivity_batches,
                          "act_bits": act_bits, "probe": "calibrated-mse", "modules": module_map.to_dict()},
                         sort_keys=True)
    path = Path(config.cache_dir) / "sensitivity" / f"{hashlib.sha256(payload.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        return mqat.SensitivityTable.from_dict(json.loads(path.read_text()))
    table = mqat.sensitivity(model, module_map, loss_fn=task.loss_fn,
                             batches=task.sensitivity_batches(config.search.sensitivity_batches),
                             bits=bits, act_bits=act_bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_dict(), indent=1))
    return table


def prepare(config: Config, checked: Checked, *, progress: bool = True, log=print) -> Prepared:
    """FP weights, sensitivity table, ILP plans and the seed points of the search."""
    task = checked.task
    try:
        fp = pretrain(task, config.pretrain, cache_dir=config.cache_dir, progress=progress)
    except ValueError as err:  # data that turn out unreadable while loading
        raise ConfigError(str(err)) from None
    log(format_pretrain(fp, task.metric))  # every run: the figure the whole search stands on
    problem = baseline_problem(fp.metrics, task.metric.name)
    if problem and config.pretrain.require_above_baseline:
        raise ConfigError(f"{problem} (checkpoint {fp.checkpoint})")
    # the data every trial reads, made ready here, once, rather than by trials racing each other
    # (and verified: a damaged cache is built again, while trials only compare sizes)
    try:
        task.prepare_data()
    except ValueError as err:  # data that turn out unreadable while loading
        raise ConfigError(str(err)) from None
    model = load_model(task, fp.checkpoint)
    table = _sensitivity(config, task, checked.units_map, fp.checkpoint, model)
    search = config.search
    targets = list(search.targets)
    method = METHODS[search.method]
    if method.spread_targets:
        targets = ilp_targets(min(targets), max(targets), search.num_samples)
    plans = mqat.solve_bit_plans(table, checked.weight_counts, targets=targets, fp_weights=checked.fp_weights,
                                 choices=list(config.space.weight_bits), act_bits=config.space.top_act_bits,
                                 window=TARGET_WINDOW)
    seeds = seed_points(plans, config.space, table, checked.units_map) if method.ilp_seeds and search.ilp_seeds \
        else []
    fp_metrics = {**fp.metrics, "bops": fp_bops(task, model)}
    if on_export(search.objectives):
        fp_metrics.update(fp_latency(config, task, model))
        log(f"FP model: {fp_metrics['latency_ms']:.2f} ms at batch 1 in {fp_metrics['latency_provider']} on this "
            "machine; the hypervolume's latency reference is twice that")
    return Prepared(checked, load_state_dict(fp.checkpoint), fp_metrics, table, plans, seeds)


def fp_bops(task: Task, model) -> float:
    """The FP model's bit operations (MACs at 32-bit weights and inputs): a BOPs objective's
    reference, and the scale a trial's BOPs are read against."""
    full = mqat.FULL_PRECISION
    plan = mqat.BitPlan(dict.fromkeys(task.module_map.names, full), act_bits=full)
    return mqat.model_size(model, plan, task.module_map, example_input=example_input(task).cpu()).bops


def fp_latency(config: Config, task: Task, model) -> dict[str, Any]:
    """The FP model's ONNX export timed on the driver, as trials time theirs: the reference of a
    latency objective's hypervolume (a trial slower than twice the FP model adds nothing)."""
    import tempfile

    from trainables.deploy import export_and_time

    with tempfile.TemporaryDirectory() as directory:
        return export_and_time(model, task, Path(directory), config.search.deploy, "cpu")


def format_pretrain(result, metric) -> str:
    """The figures a user checks after pretraining, in a few lines: the task's score with its
    standard error, its companion metrics (as the task's ``metric`` names them), the timings."""
    m = result.metrics
    images = f", {int(m['images'])} validation images" if m.get("images") is not None else ""
    se = f" +- {m['accuracy_se']:.3f} (standard error{images})" if m.get("accuracy_se") is not None else ""
    test = f"; test split {m['test_accuracy']:.3f}" if m.get("test_accuracy") is not None else ""
    lines = [f"FP model: {metric.name} {m['accuracy']:.3f}{se}{test}"]
    companions = [f"{label} {m[key]:.3g}" for key, label in metric.companions.items() if m.get(key) is not None]
    if companions:
        lines.append("          " + ", ".join(companions))
    if m.get("baseline_accuracy") is not None:
        lines.append(f"baseline (a model that learned nothing): {metric.name} {m['baseline_accuracy']:.3f}")
    if m.get("bn_reestimated"):
        lines.append(f"BatchNorm statistics re-estimated from training batches: {metric.name} "
                     f"{m['accuracy_trained_bn']:.3f} -> {m['accuracy']:.3f}")
    if m.get("source") == "checkpoint":
        lines.append(f"checkpoint: {result.checkpoint} (configured: pretrain.checkpoint)")
    elif result.cached:
        lines.append(f"checkpoint: {result.checkpoint} (cached: trained before with these settings and code)")
    else:
        lines.append(f"checkpoint: {result.checkpoint} (trained now: data {m['data_seconds']:.0f} s, "
                     f"training {m['train_seconds']:.0f} s)")
    return "\n".join(lines)


def module_shares(counts: dict[str, int], fp_weights: int, module_map: mqat.ModuleMap) -> str:
    """Each unit's share of the quantized weights (what its bits act on) and its layer-name
    prefixes: the modules, or their groups under each module; the weights kept at full
    precision whatever the plan, as a share of all."""
    quantized = sum(counts.values())
    grouped = bool(module_map.groups)
    kind = "modules and their groups" if grouped else "modules"
    lines = [f"{kind} (layer-name prefixes) and their share of the quantized weights:"]
    width = max(len(u) for u in counts) + (2 if grouped else 0)
    for module in module_map.names:
        units = module_map.units_of(module)
        share = sum(counts[u] for u in units) / quantized
        prefixes = "" if grouped else ", ".join(p.rstrip(".") for p in module_map.prefixes[module])
        lines.append(f"  {module:<{width}} {share:6.1%}  {prefixes}".rstrip())
        if grouped:
            lines += [f"    {u:<{width - 2}} {counts[u] / quantized:6.1%}  "
                      f"{', '.join(p.rstrip('.') for p in module_map.groups[module][u])}" for u in units]
    if fp_weights:
        lines.append(f"  kept at full precision: the first and last layers, {fp_weights / (quantized + fp_weights):.1%} "
                     "of all weights")
    return "\n".join(lines)


def plan_bits(plan: mqat.BitPlan, module_map: mqat.ModuleMap) -> str:
    """A plan's weight bits in a few words: ``backbone 4, fpn 2, head 4``, or each module's
    groups' bits in order, ``backbone 4-4-3-2-2-8, fpn 8-8-8-8-4, head 8-8``."""
    return ", ".join(f"{m} {'-'.join(str(plan.weight_bits[u]) for u in module_map.units_of(m))}"
                     for m in module_map.names)


def describe(prepared: Prepared) -> str:
    """The sensitivity table and the ILP plans, as ``mqat plan`` prints them."""
    counts, fp = prepared.checked.weight_counts, prepared.checked.fp_weights
    total = sum(counts.values()) + fp
    module_map = prepared.checked.units_map
    lines = [module_shares(counts, fp, module_map)]
    lines += [str(prepared.table), "ILP plans (least summed sensitivity meeting each target):"]
    for target, plan in prepared.plans.items():
        cf = 32 * total / (sum(plan.weight_bits[m] * n for m, n in counts.items()) + 32 * fp)
        cost = sum(prepared.table.delta[m][b] for m, b in plan.weight_bits.items() if b < 32)
        lines.append(f"  target {target:>6g}x -> {cf:5.2f}x  [{plan_bits(plan, module_map)}]  summed sensitivity "
                     f"{cost:.3f}")
    lines.append(f"highest reachable compression: {prepared.checked.max_compression:.2f}x")
    return "\n".join(lines)
