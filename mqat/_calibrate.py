"""Calibration: quantizer steps set from data before QAT, so training starts near FP.

LSQ's initial step ``2 mean|v| / sqrt(Qp)`` is a poor start at 8 bits and for activations
(METHODS 6). Common practice (NNCF, AIMET, TensorRT) sets per-channel weight steps that
minimise the quantization error and activation ranges from all calibration batches; QAT
then trains only what the low bits lose.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ._layers import QuantConv2d, QuantLinear
from ._lsq import LSQQuantizer, mse_step, quant_range
from ._quantize import quantized_layers

WEIGHT_RULES = ("mse", "lsq")
ACTIVATION_RULES = ("mse", "percentile", "lsq")
#: activation values kept per layer and batch for the MSE search (a uniform random sample)
SAMPLES_PER_BATCH = 1 << 15

Forward = Callable[[nn.Module, Any], Any]


def _default_forward(model: nn.Module, batch: Any) -> Any:
    """A batch is the model's input, or a tuple whose first item is."""
    return model(batch[0] if isinstance(batch, (tuple, list)) else batch)


def set_weight_step(quantizer: LSQQuantizer, weight: Tensor, rule: str = "mse") -> None:
    """Per-channel weight steps: error-minimising (``mse``) or LSQ's rule (``lsq``)."""
    _check_rule("weights", rule, WEIGHT_RULES)
    if rule == "mse":
        quantizer.initialize_mse(weight)
    else:
        quantizer.initialize(weight)


def set_activation_step(quantizer: LSQQuantizer, sample: Tensor, *, signed: bool, rule: str = "mse",
                        percentile: float = 99.99) -> None:
    """One activation step from a sample of a layer's inputs over all calibration batches."""
    _check_rule("activations", rule, ACTIVATION_RULES)
    if quantizer.auto_sign:
        quantizer.signed.fill_(signed)
    qmin, qmax = quant_range(quantizer.bits, bool(quantizer.signed))
    values = sample.float().reshape(1, -1)
    if rule == "mse":
        step = mse_step(values, qmin, qmax)
    elif rule == "percentile":
        top = torch.quantile(values.abs().reshape(-1)[:1 << 24], percentile / 100.0)  # quantile's size limit
        step = (top / max(qmax, -qmin)).reshape(1)
    else:
        step = (2 * values.abs().mean() / math.sqrt(qmax)).reshape(1)
    quantizer.set_step(step)


def _check_rule(what: str, rule: str, rules: Sequence[str]) -> None:
    if rule not in rules:
        raise ValueError(f"calibration rule for {what} must be one of {list(rules)}, but got {rule!r}")


def check_calibration(weights: str, activations: str, percentile: float) -> None:
    """ValueError unless the rules are known and the percentile lies in (0, 100]."""
    _check_rule("weights", weights, WEIGHT_RULES)
    _check_rule("activations", activations, ACTIVATION_RULES)
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], but got {percentile!r}")


class _InputSampler:
    """Keeps a uniform random sample of a layer's inputs, and whether any was negative."""

    def __init__(self, generator: torch.Generator):
        self.parts: list[Tensor] = []
        self.negative = False
        self.generator = generator

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach().reshape(-1)
        self.negative |= bool((x < 0).any())
        if x.numel() > SAMPLES_PER_BATCH:
            index = torch.randint(0, x.numel(), (SAMPLES_PER_BATCH,), generator=self.generator)
            x = x[index.to(x.device)]
        self.parts.append(x.float().cpu())

    def sample(self) -> Tensor:
        return torch.cat(self.parts)


@contextmanager
def _observing(model: nn.Module, layers: list[tuple[str, QuantConv2d | QuantLinear]]):
    """Model in eval mode (BN statistics fixed) with the given layers' quantizers bypassed, so
    each layer sees the float input it will quantize; everything restored on exit."""
    saved = [(layer, layer.weight_quant, layer.act_quant) for _, layer in layers]
    was_training = model.training
    try:
        for layer, _, _ in saved:
            layer.weight_quant, layer.act_quant = None, None
        model.eval()
        yield
    finally:
        for layer, wq, aq in saved:
            layer.weight_quant, layer.act_quant = wq, aq
        model.train(was_training)


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable, *, weights: str = "mse", activations: str = "mse",
              percentile: float = 99.99, layers: Sequence[str] | None = None,
              forward: Forward | None = None, seed: int = 0) -> nn.Module:
    """Set the step sizes of quantized layers from data, before QAT (or instead of it: PTQ).

    Call after :func:`quantize_`. Weight steps are per output channel: ``"mse"`` minimises the
    quantization error of each channel, ``"lsq"`` is LSQ's ``2 mean|w| / sqrt(Qp)``. Activation
    steps come from the inputs each layer sees over *all* ``batches`` (BN in eval mode, the
    layers being calibrated left unquantized meanwhile, earlier ones quantized):
    ``"mse"`` (least squared error on a random sample of them), ``"percentile"`` (that
    percentile of ``|x|`` is the top level) or ``"lsq"``. ``layers`` limits calibration to
    those quantized layers (the gradated flow passes a stage's new ones); ``forward(model,
    batch)`` runs a batch (default: ``model(batch)``, or ``model(batch[0])`` for a tuple).
    Returns ``model``.

    Example::

        mqat.quantize_(model, mqat.BitPlan.uniform(module_map.names, 8), module_map)
        mqat.calibrate(model, [x for x, _ in val_batches][:8])
    """
    check_calibration(weights, activations, percentile)
    chosen = _chosen_layers(model, layers)
    for _, layer in chosen:
        if layer.weight_quant is not None:
            set_weight_step(layer.weight_quant, layer.weight, weights)
    observed = _own_input_quantizers(model, chosen)
    if observed:
        # layers not yet calibrated run at FP meanwhile (they would initialise themselves)
        bypassed = chosen + [(n, layer) for n, layer in quantized_layers(model)
                             if layer.act_quant is not None and not layer.act_quant.is_initialized()]
        _calibrate_activations(model, observed, bypassed, list(batches), activations, percentile,
                               forward or _default_forward, seed)
    return model


def _own_input_quantizers(model: nn.Module, chosen) -> list:
    """The chosen layers whose input quantizers get calibrated: one layer per quantizer (readers of
    one tensor may share one), and none that an already calibrated layer outside ``chosen`` shares
    (it keeps its trained step)."""
    names = {n for n, _ in chosen}
    outside = {id(layer.act_quant) for n, layer in quantized_layers(model)
               if n not in names and layer.act_quant is not None}
    observed, seen = [], set()
    for name, layer in chosen:
        quantizer = layer.act_quant
        if quantizer is None or id(quantizer) in seen or (id(quantizer) in outside and quantizer.is_initialized()):
            continue
        seen.add(id(quantizer))
        observed.append((name, layer))
    return observed


def _chosen_layers(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, QuantConv2d | QuantLinear]]:
    every = quantized_layers(model)
    if layers is None:
        return every
    known = dict(every)
    unknown = [n for n in layers if n not in known]
    if unknown:
        raise ValueError(f"calibrate: {unknown} are not quantized layers of the model")
    return [(n, known[n]) for n in layers]


def _calibrate_activations(model, observed, bypassed, batches, rule, percentile, forward, seed) -> None:
    if not batches:
        raise ValueError("calibrating activations needs at least one batch")
    generator = torch.Generator().manual_seed(seed)
    samplers = {n: _InputSampler(generator) for n, _ in observed}
    quantizers = {n: layer.act_quant for n, layer in observed}
    hooks = [layer.register_forward_pre_hook(samplers[n]) for n, layer in observed]
    try:
        with _observing(model, bypassed):
            for batch in batches:
                forward(model, batch)
    finally:
        for hook in hooks:
            hook.remove()
    for name, quantizer in quantizers.items():
        sampler = samplers[name]
        set_activation_step(quantizer, sampler.sample(), signed=sampler.negative, rule=rule,
                            percentile=percentile)
