"""The gradated MQAT flow (METHODS section 1): quantize one module at a time, fine-tuning the
whole network in between, then finalise the model with EMA, BN re-estimation and QC.

Read top-down: :func:`run_mqat` sets up a :class:`_Flow`; ``_Flow.stage`` is one stage
(quantize, calibrate, train, score, checkpoint); ``_Flow.finalise`` picks the model to deploy.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ._batchnorm import reestimate_bn
from ._calibrate import Forward, calibrate, check_calibration
from ._ema import EMAConfig, ModelEMA
from ._module_map import ModuleMap
from ._oscillation import OscillationTracker
from ._plan import FULL_PRECISION, BitPlan
from ._qc import QCConfig, add_qc, clamp_qc, fold_qc, frozen
from ._quantize import quantize_, quantized_layers
from ._seed import derive_seed, seed_everything
from ._shared_inputs import share_input_quantizers
from ._size import model_size

#: ``train_epoch(model, optimizer, on_step) -> mean loss``: one epoch of training. It must call
#: ``on_step()`` after every optimizer step and must not switch the model's train/eval mode.
TrainEpoch = Callable[[nn.Module, torch.optim.Optimizer, Callable[[], None]], float]
#: ``evaluate(model) -> accuracy`` or a mapping of metrics that holds ``"accuracy"``.
Evaluate = Callable[[nn.Module], "float | Mapping[str, float]"]
OptimizerFactory = Callable[[list], torch.optim.Optimizer]


@dataclass(frozen=True)
class CalibrationConfig:
    """How :func:`calibrate` sets each stage's new quantizers before it trains (see there)."""

    weights: str = "mse"
    activations: str = "mse"
    percentile: float = 99.99

    def __post_init__(self) -> None:
        check_calibration(self.weights, self.activations, self.percentile)


@dataclass
class FlowState:
    """Where the flow stands after a stage: what :func:`run_mqat` needs to resume after it."""

    next_stage: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    ema_updates: int
    results: list[dict[str, Any]]


@dataclass
class StageResult:
    """What one stage of the flow produced; ``to_dict()`` is flat, ready to report.

    ``state`` is the resumable :class:`FlowState` after a training stage (None after the
    finalising ones): pass it back to :func:`run_mqat` as ``resume`` to continue from there.
    """

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
    state: FlowState | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> StageResult:
        """Inverse of :meth:`saved` (as stored in a :class:`FlowState`)."""
        return cls(**{**data, "modules": tuple(data["modules"])})

    def saved(self) -> dict[str, Any]:
        """The result as plain data, without its state."""
        return {k: v for k, v in asdict(self).items() if k != "state"} | {"modules": list(self.modules)}

    def to_dict(self) -> dict[str, Any]:
        out = self.saved()
        out["modules"] = ",".join(self.modules)
        out.update({f"metric/{k}": v for k, v in out.pop("metrics").items()})
        out.update({f"oscillation/{k}": v for k, v in out.pop("oscillation").items()})
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class MQATResult:
    """The flow's outcome. ``model`` is the one to deploy: the EMA model if EMA was on, its BN
    statistics re-estimated if asked, with QC folded in if QC was on. ``final`` holds
    ``accuracy`` (of ``model``, scored by ``evaluate``) and, where they apply, the candidates
    ``accuracy_raw``, ``accuracy_ema``, ``accuracy_bn`` and ``accuracy_qc``: the last of them is
    ``model``'s, the ones before it are scored by ``evaluate_stage`` (see ``_Flow.finalise``)."""

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
    """Modules quantized stage by stage; modules left fully at FP need no stage."""
    def has_work(m: str) -> bool:
        return any(plan.weight_bits[u] < FULL_PRECISION or plan.act_bits_of(u) < FULL_PRECISION
                   for u in module_map.units_of(m))

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


def _state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def run_mqat(model: nn.Module, plan: BitPlan, module_map: ModuleMap, *,
             order: Sequence[str] | None, train_epoch: TrainEpoch, evaluate: Evaluate,
             epochs_per_stage: int = 1, optimizer: OptimizerFactory | None = None,
             ema: EMAConfig | None = None, qc: QCConfig | None = None,
             calibration: CalibrationConfig | None = CalibrationConfig(),
             calibration_batches: Sequence | None = None, bn_batches: Sequence | None = None,
             forward: Forward | None = None, seed: int | None = None,
             on_stage: Callable[[StageResult], None] | None = None,
             evaluate_stage: Evaluate | None = None, ema_every_stage: bool = False,
             resume: FlowState | None = None, oscillation_threshold: float = 0.005,
             shared_inputs: Sequence[Sequence[str]] | None = None) -> MQATResult:
    """Modular QAT: quantize the modules one at a time in ``order``, fine-tuning after each.

    Each stage quantizes its module, calibrates the new quantizers on ``calibration_batches``
    (with ``calibration``; without batches, or with ``calibration=None``, LSQ initialises them
    from the first training batch), and fine-tunes the whole network: already quantized
    modules keep training (latent weights and steps). ``order=None`` is the uniform-LSQ
    baseline: every module at once, trained for as many epochs as the gradated flow would
    train in total, so both get the same budget. A new optimizer (``optimizer(params)``, Adam
    1e-4 by default) is built at each stage, since each stage adds step sizes.

    The model to deploy is then finalised: with ``ema`` a :class:`ModelEMA` shadows the training
    (restarted at every stage, so it averages the last stage's network) and is returned instead
    of the raw model; with ``bn_batches`` its BatchNorm statistics are
    re-estimated (:func:`reestimate_bn`); with ``qc`` it gets the QC correction, folded away at
    the end. The model returned is scored with ``evaluate``, the candidates before it (the raw
    model, the EMA model before BN re-estimation or QC) with ``evaluate_stage``.

    ``shared_inputs``: groups of layers that read one tensor (:func:`mqat.input_groups`); each
    group's quantized layers share one input quantizer (:func:`mqat.share_input_quantizers`).

    ``seed`` fixes each stage's randomness (the stage reseeds torch, numpy and ``random`` from
    ``seed`` and its index), so a resumed run trains as an uninterrupted one.
    ``forward(model, batch)`` runs a calibration or BN batch (default: its first item).
    Intermediate stages are scored with ``evaluate_stage`` (default ``evaluate``), which may be
    cheaper; the EMA model only at the last stage unless ``ema_every_stage``. ``on_stage``
    receives each :class:`StageResult`, whose ``state`` (after training stages) can be passed
    back as ``resume`` to continue after that stage. A non-finite loss raises
    ``FloatingPointError``.
    """
    module_map.check_plan(plan)
    if isinstance(epochs_per_stage, bool) or not isinstance(epochs_per_stage, int) \
            or epochs_per_stage < 1:
        raise ValueError(f"epochs_per_stage must be an integer >= 1, but got {epochs_per_stage!r}")
    stages = _stages(plan, module_map, order)
    if not any(stages):
        raise ValueError("the plan keeps every module at 32 bits: there is nothing to quantize")
    flow = _Flow(model, plan, module_map, train_epoch=train_epoch, evaluate=evaluate,
                 evaluate_stage=evaluate_stage or evaluate, optimizer=optimizer or _default_optimizer,
                 epochs=epochs_per_stage * (len(module_map.names) if order is None else 1),
                 ema=ema, calibration=calibration if calibration_batches else None,
                 calibration_batches=calibration_batches, forward=forward, seed=seed,
                 on_stage=on_stage or (lambda result: None), ema_every_stage=ema_every_stage,
                 oscillation_threshold=oscillation_threshold, shared_inputs=shared_inputs or (),
                 returns_raw=ema is None and qc is None and not bn_batches)
    skip = resume.next_stage if resume is not None else 0
    for index, modules in enumerate(stages):
        name = "+".join(modules) if order is not None else "uniform"
        if index < skip:  # rebuild the structure the saved state fits, then load it
            flow.quantize_modules(modules)
            if index == skip - 1:
                assert resume is not None  # stages are skipped only when resuming
                flow.restore(resume)
            continue
        flow.stage(index, name, modules, last=index == len(stages) - 1)
    return flow.finalise(qc=qc, bn_batches=bn_batches)


class _Flow:
    """The state one run of the flow carries from stage to stage."""

    def __init__(self, model, plan, module_map, *, train_epoch, evaluate, evaluate_stage, optimizer,
                 epochs, ema, calibration, calibration_batches, forward, seed, on_stage,
                 ema_every_stage, oscillation_threshold, shared_inputs, returns_raw):
        self.model, self.plan, self.module_map = model, plan, module_map
        self.train_epoch, self.evaluate, self.evaluate_stage = train_epoch, evaluate, evaluate_stage
        self.optimizer, self.epochs = optimizer, epochs
        self.calibration, self.calibration_batches = calibration, calibration_batches
        self.forward, self.seed, self.on_stage = forward, seed, on_stage
        self.ema_every_stage, self.threshold = ema_every_stage, oscillation_threshold
        self.shared_inputs = shared_inputs
        self.returns_raw = returns_raw  # the last stage's raw model is the one returned
        self.shadow = ModelEMA(model, decay=ema.decay, warmup_steps=ema.warmup_steps) if ema else None
        self.tracker: OscillationTracker | None = None
        self.results: list[StageResult] = []
        self.done: list[str] = []
        self.ema_metrics: dict[str, float] | None = None

    def _reseed(self, index: int) -> None:
        if self.seed is not None:
            seed_everything(derive_seed(self.seed, index))

    def _on_step(self) -> None:
        if self.shadow is not None:
            self.shadow.update(self.model)
        assert self.tracker is not None  # made by the first stage, before any step
        self.tracker.update()

    def restore(self, state: FlowState) -> None:
        """Load a saved flow state into a model quantized up to the same stage."""
        self.model.load_state_dict(state.model)
        if self.shadow is not None and state.ema is not None:
            self.shadow.refresh(self.model)
            self.shadow.load(state.ema, state.ema_updates)
        self.results = [StageResult.from_state(r) for r in state.results]
        self.done = [m for r in self.results for m in r.modules]
        self.tracker = OscillationTracker(self.model, self.module_map, threshold=self.threshold)

    def quantize_modules(self, modules: list[str]) -> None:
        """Quantize ``modules``' layers; readers of one tensor share an input quantizer if asked."""
        quantize_(self.model, self.plan, self.module_map, modules=modules)
        if self.shared_inputs:
            share_input_quantizers(self.model, self.shared_inputs)

    def quantize(self, index: int, modules: list[str]) -> None:
        """Quantize ``modules`` and calibrate their new quantizers from data."""
        before = {name for name, _ in quantized_layers(self.model)}
        self.quantize_modules(modules)
        self.done += modules
        new = [name for name, _ in quantized_layers(self.model) if name not in before]
        if self.calibration is not None and new:
            c = self.calibration
            calibrate(self.model, self.calibration_batches, weights=c.weights, activations=c.activations,
                      percentile=c.percentile, layers=new, forward=self.forward,
                      seed=derive_seed(self.seed or 0, index))

    def stage(self, index: int, name: str, modules: list[str], *, last: bool) -> None:
        """One stage: quantize and calibrate, fine-tune everything, score, report with a state."""
        start = time.perf_counter()
        self.quantize(index, modules)
        if self.shadow is not None:  # the average covers this stage's network only
            self.shadow.restart(self.model)
        if self.tracker is None:
            self.tracker = OscillationTracker(self.model, self.module_map, threshold=self.threshold)
        else:
            self.tracker.refresh(self.model)
        self._reseed(index)
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss = _train(self.model, params, self.optimizer, self.train_epoch, self.epochs, self._on_step, name)
        # only the model that is returned is scored with `evaluate`; the rest inform
        accuracy, metrics = _accuracy(self.evaluate if last and self.returns_raw else self.evaluate_stage,
                                      self.model)
        ema_accuracy = None
        if self.shadow is not None and (self.ema_every_stage and not last):
            ema_accuracy, _ = _accuracy(self.evaluate_stage, self.shadow.module)
        done = [u for m in self.done for u in self.module_map.units_of(m)]
        size = model_size(self.model, self.plan.restricted_to(done), self.module_map)
        result = StageResult(index, name, tuple(modules), accuracy, size.compression, size.packed_bytes,
                             self.tracker.overall(), loss, time.perf_counter() - start, ema_accuracy,
                             metrics, self.tracker.fraction())
        self.results.append(result)
        result.state = FlowState(index + 1, _state_of(self.model),
                                 _state_of(self.shadow.module) if self.shadow else None,
                                 self.shadow.updates if self.shadow else 0,
                                 [r.saved() for r in self.results])
        self.on_stage(result)

    def finalise(self, *, qc: QCConfig | None, bn_batches: Sequence | None) -> MQATResult:
        """The model to deploy: the raw or EMA model, BN re-estimated, QC folded; each scored.

        As in the stages, only the model returned is scored with ``evaluate``; the candidates
        before it (the raw model: its last stage's score; the EMA model before BN re-estimation or
        QC; the BN re-estimated one before QC) inform, scored with ``evaluate_stage``."""
        last = self.results[-1]
        model, final, metrics = self.model, {"accuracy_raw": last.accuracy}, last.metrics
        steps = [name for name, on in (("ema", self.shadow is not None), ("bn", bool(bn_batches)),
                                       ("qc", qc is not None)) if on]

        def score(step: str) -> dict[str, float]:
            return _accuracy(self.evaluate if step == steps[-1] else self.evaluate_stage, model)[1]

        if self.shadow is not None:
            model = self.shadow.module
            metrics = score("ema")
            final["accuracy_ema"] = last.ema_accuracy = metrics["accuracy"]
        if bn_batches:
            reestimate_bn(model, bn_batches, forward=self.forward)
            metrics = score("bn")
            final["accuracy_bn"] = metrics["accuracy"]
        final["accuracy"] = metrics["accuracy"]
        if qc is not None:
            self._reseed(last.stage + 1)
            result = _run_qc(model, self.plan, self.module_map, qc, self.train_epoch, self.evaluate, last)
            final["accuracy_qc"] = final["accuracy"] = result.accuracy
            metrics = result.metrics
            self.results.append(result)
            self.on_stage(result)
        return MQATResult(model, self.results, final, metrics)


def train_qc(model: nn.Module, qc: QCConfig, train_epoch: TrainEpoch) -> float:
    """QC after QAT, in place: train the per-channel affine alone with the network frozen (BN
    statistics fixed), then fold it into the steps and biases. Returns the last epoch's loss.

    Example::

        mqat.train_qc(result.model, mqat.QCConfig(lr=1e-3), train_epoch)
    """
    params = add_qc(model)
    with frozen(model, params):
        loss = _train(model, params, lambda p: torch.optim.Adam(p, lr=qc.lr), train_epoch,
                      qc.epochs, lambda: clamp_qc(model), "qc")
    fold_qc(model)
    model.eval()
    return loss


def _run_qc(model, plan, module_map, qc, train_epoch, evaluate, last: StageResult) -> StageResult:
    """QC (:func:`train_qc`), scored as a stage of its own."""
    start = time.perf_counter()
    loss = train_qc(model, qc, train_epoch)
    accuracy, metrics = _accuracy(evaluate, model)
    size = model_size(model, plan, module_map)
    return StageResult(last.stage + 1, "qc", (), accuracy, size.compression, size.packed_bytes,
                       last.oscillating_fraction, loss, time.perf_counter() - start, None, metrics,
                       last.oscillation)
