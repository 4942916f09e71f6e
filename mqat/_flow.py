"""The gradated MQAT flow: quantize one module at a time, fine-tuning the network in between."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ._ema import EMAConfig, ModelEMA
from ._module_map import ModuleMap
from ._oscillation import OscillationTracker
from ._plan import FULL_PRECISION, BitPlan
from ._qc import QCConfig, add_qc, clamp_qc, fold_qc, frozen
from ._quantize import quantize_
from ._size import model_size

#: ``train_epoch(model, optimizer, on_step) -> mean loss``: one epoch of training. It must call
#: ``on_step()`` after every optimizer step and must not switch the model's train/eval mode.
TrainEpoch = Callable[[nn.Module, torch.optim.Optimizer, Callable[[], None]], float]
#: ``evaluate(model) -> accuracy`` or a mapping of metrics that holds ``"accuracy"``.
Evaluate = Callable[[nn.Module], "float | Mapping[str, float]"]
OptimizerFactory = Callable[[list], torch.optim.Optimizer]


@dataclass
class StageResult:
    """What one stage of the flow produced; ``to_dict()`` is flat, ready to report."""

    stage: int
    name: str
    modules: tuple[str, ...]
    accuracy: float
    compression: float
    model_bytes: int
    oscillating_fraction: float
    loss: float
    seconds: float
    ema_accuracy: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    oscillation: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> StageResult:
        """Inverse of ``asdict`` (as stored in a :class:`FlowState`)."""
        return cls(**{**data, "modules": tuple(data["modules"])})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modules"] = ",".join(self.modules)
        out.update({f"metric/{k}": v for k, v in out.pop("metrics").items()})
        out.update({f"oscillation/{k}": v for k, v in out.pop("oscillation").items()})
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class FlowState:
    """Where the flow stands after a stage: what :func:`run_mqat` needs to resume after it."""

    next_stage: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    ema_updates: int
    results: list[dict[str, Any]]


@dataclass
class MQATResult:
    """The flow's outcome. ``model`` is the one to deploy: the EMA model if EMA was on, with QC
    folded in if QC was on. ``final`` holds ``accuracy`` (of ``model``) and, where they apply,
    ``accuracy_raw``, ``accuracy_ema`` and ``accuracy_qc``."""

    model: nn.Module
    stages: list[StageResult]
    final: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)  # every metric of ``model``


def _accuracy(evaluate: Evaluate, model: nn.Module) -> tuple[float, dict[str, float]]:
    metrics = evaluate(model)
    if not isinstance(metrics, Mapping):
        return float(metrics), {"accuracy": float(metrics)}
    if "accuracy" not in metrics:
        raise ValueError(f"evaluate() must return 'accuracy', but returned {sorted(metrics)}")
    return float(metrics["accuracy"]), {k: float(v) for k, v in metrics.items()}


def _stages(plan: BitPlan, module_map: ModuleMap, order: Sequence[str] | None) -> list[list[str]]:
    """Module groups quantized stage by stage; modules left fully at FP need no stage."""
    def has_work(m: str) -> bool:
        return plan.weight_bits[m] < FULL_PRECISION or plan.act_bits_of(m) < FULL_PRECISION

    if order is None:
        return [[m for m in module_map.names if has_work(m)]]
    order = module_map.check_modules(order, what="order")
    missing = [m for m in module_map.names if m not in order]
    if missing:
        raise ValueError(f"order must list every module once; it lacks {missing}")
    return [[m] for m in order if has_work(m)]


def _train(model, params, optimizer_factory, train_epoch, epochs, on_step, stage_name):
    optimizer = optimizer_factory(params)
    loss = math.nan
    for _ in range(epochs):
        model.train()
        loss = float(train_epoch(model, optimizer, on_step))
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} during stage {stage_name!r}")
    return loss


def _default_optimizer(params: list) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-4)


def run_mqat(model: nn.Module, plan: BitPlan, module_map: ModuleMap, *,
             order: Sequence[str] | None, train_epoch: TrainEpoch, evaluate: Evaluate,
             epochs_per_stage: int = 1, optimizer: OptimizerFactory | None = None,
             ema: EMAConfig | None = None, qc: QCConfig | None = None,
             on_stage: Callable[[StageResult], None] | None = None,
             evaluate_stage: Evaluate | None = None, ema_every_stage: bool = False,
             resume: FlowState | None = None, on_state: Callable[[FlowState], None] | None = None,
             oscillation_threshold: float = 0.005) -> MQATResult:
    """Modular QAT: quantize the modules one at a time in ``order``, fine-tuning after each.

    Already quantized modules keep training (latent weights and steps). ``order=None`` is the
    uniform-LSQ baseline: every module at once, trained for as many epochs as the gradated flow
    would train in total, so both get the same budget. A new optimizer (``optimizer(params)``,
    Adam 1e-4 by default) is built at each stage, since each stage adds step sizes. With ``ema``
    a :class:`ModelEMA` shadows the training; with ``qc`` the final model gets the QC
    correction, folded away at the end. ``on_stage`` receives each :class:`StageResult`,
    QC's included. A non-finite training loss raises ``FloatingPointError``.

    Only the model that is returned is scored with ``evaluate``; the others (earlier stages,
    and the raw and EMA models when EMA or QC follow them) only inform and are scored with
    ``evaluate_stage`` (default ``evaluate``), which may be cheaper. The EMA model is scored
    at the last stage only unless ``ema_every_stage``. After each stage ``on_state``
    receives a :class:`FlowState`; passing it back as ``resume`` continues after that stage.
    """
    module_map.check_plan(plan)
    if isinstance(epochs_per_stage, bool) or not isinstance(epochs_per_stage, int) \
            or epochs_per_stage < 1:
        raise ValueError(f"epochs_per_stage must be an integer >= 1, but got {epochs_per_stage!r}")
    stages = _stages(plan, module_map, order)
    if not any(stages):
        raise ValueError("the plan keeps every module at 32 bits: there is nothing to quantize")
    epochs = epochs_per_stage * (len(module_map.names) if order is None else 1)
    optimizer = optimizer or _default_optimizer
    shadow = ModelEMA(model, decay=ema.decay, warmup_steps=ema.warmup_steps) if ema else None
    tracker: OscillationTracker | None = None

    def on_step() -> None:
        if shadow is not None:
            shadow.update(model)
        tracker.update()

    results: list[StageResult] = []
    done: list[str] = []
    ema_metrics = None
    cheap = evaluate_stage or evaluate
    skip = resume.next_stage if resume is not None else 0
    for index, modules in enumerate(stages):
        start = time.perf_counter()
        name = "+".join(modules) if order is not None else "uniform"
        last = index == len(stages) - 1
        quantize_(model, plan, module_map, modules=modules)
        done += modules
        if index < skip:
            if index == skip - 1:
                results = _restore(resume, model, shadow)
            continue
        if shadow is not None:
            shadow.refresh(model)
        if tracker is None:
            tracker = OscillationTracker(model, module_map, threshold=oscillation_threshold)
        else:
            tracker.refresh(model)
        params = [p for p in model.parameters() if p.requires_grad]
        loss = _train(model, params, optimizer, train_epoch, epochs, on_step, name)
        # only the model that is returned is scored with `evaluate`; the rest inform
        returned_raw = last and shadow is None and qc is None
        accuracy, metrics = _accuracy(evaluate if returned_raw else cheap, model)
        ema_accuracy = None
        if shadow is not None and (last or ema_every_stage):
            ema_accuracy, ema_metrics = _accuracy(evaluate if last and qc is None else cheap,
                                                  shadow.module)
        size = model_size(model, plan.restricted_to(done), module_map)
        result = StageResult(index, name, tuple(modules), accuracy, size.compression,
                             size.packed_bytes, tracker.overall(), loss,
                             time.perf_counter() - start, ema_accuracy, metrics, tracker.fraction())
        results.append(result)
        if on_stage:
            on_stage(result)
        if on_state:
            on_state(FlowState(index + 1, _state_of(model), _state_of(shadow.module) if shadow else None,
                               shadow.updates if shadow else 0, [asdict(r) for r in results]))

    final_model = shadow.module if shadow is not None else model
    final = {"accuracy_raw": results[-1].accuracy}
    final_metrics = results[-1].metrics
    if shadow is not None:
        if ema_metrics is None:  # resumed after the last stage: score the average now
            _, ema_metrics = _accuracy(evaluate if qc is None else cheap, shadow.module)
        final["accuracy_ema"] = ema_metrics["accuracy"]
        final_metrics = ema_metrics
    final["accuracy"] = final.get("accuracy_ema", final["accuracy_raw"])
    if qc is not None:
        result = _run_qc(final_model, plan, module_map, qc, train_epoch, evaluate, results[-1])
        final["accuracy_qc"] = final["accuracy"] = result.accuracy
        final_metrics = result.metrics
        results.append(result)
        if on_stage:
            on_stage(result)
    return MQATResult(final_model, results, final, final_metrics)


def _state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _restore(state: FlowState, model: nn.Module, shadow: ModelEMA | None) -> list[StageResult]:
    """Load a saved flow state into a model quantized up to the same stage."""
    model.load_state_dict(state.model)
    if shadow is not None and state.ema is not None:
        shadow.refresh(model)
        shadow.load(state.ema, state.ema_updates)
    return [StageResult.from_state(r) for r in state.results]


def _run_qc(model, plan, module_map, qc, train_epoch, evaluate, last: StageResult) -> StageResult:
    """Train the QC affine alone with the network frozen, fold it, and evaluate."""
    start = time.perf_counter()
    params = add_qc(model)
    with frozen(model, params):
        loss = _train(model, params, lambda p: torch.optim.Adam(p, lr=qc.lr), train_epoch,
                      qc.epochs, lambda: clamp_qc(model), "qc")
    fold_qc(model)
    model.eval()
    accuracy, metrics = _accuracy(evaluate, model)
    size = model_size(model, plan, module_map)
    return StageResult(last.stage + 1, "qc", (), accuracy, size.compression, size.packed_bytes,
                       last.oscillating_fraction, loss, time.perf_counter() - start, None, metrics,
                       last.oscillation)
