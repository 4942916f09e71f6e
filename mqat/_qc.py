"""QC, the post-QAT correction (Gupta and Asthana, WACV 2024).

After QAT the network is frozen (BN statistics fixed) and each quantized layer gets a
per-output-channel affine ``h_hat = gamma * h + beta`` on its output (gamma = 1, beta = 0 at the
start); only gamma and beta are trained. Folding then removes the extra operation exactly:
with per-channel weight steps, ``gamma * conv(x, q * s) + gamma * bias + beta
= conv(x, q * (gamma * s)) + (gamma * bias + beta)``: the integer weights do not change, only
the step sizes and the bias. Gamma is kept positive during training so that a step stays a step.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ._quantize import quantized_layers

_MIN_GAMMA = 1e-3


@dataclass(frozen=True)
class QCConfig:
    """QC hyperparameters: learning rate and epochs of gamma/beta training (paper: one epoch)."""

    lr: float = 1e-3
    epochs: int = 1

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"QC lr must be > 0, but got {self.lr!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"QC epochs must be an integer >= 1, but got {self.epochs!r}")


def add_qc(model: nn.Module) -> list[nn.Parameter]:
    """Give every quantized layer an identity affine correction; return its gamma and beta."""
    params = []
    for _, layer in quantized_layers(model):
        channels = layer.weight.shape[0]
        device, dtype = layer.weight.device, layer.weight.dtype
        layer.qc_gamma = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))
        layer.qc_beta = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype))
        params += [layer.qc_gamma, layer.qc_beta]
    return params


@torch.no_grad()
def clamp_qc(model: nn.Module) -> None:
    """Project gamma back to positive values (after each QC optimizer step)."""
    for _, layer in quantized_layers(model):
        if layer.qc_gamma is not None:
            layer.qc_gamma.clamp_(min=_MIN_GAMMA)


@torch.no_grad()
def fold_qc(model: nn.Module) -> nn.Module:
    """Fold each layer's correction into its weight step (or float weight) and bias; in place.

    The outputs are unchanged up to float rounding, and the layers lose their QC parameters.
    """
    for _, layer in quantized_layers(model):
        if layer.qc_gamma is None or layer.qc_beta is None:  # (set together)
            continue
        gamma, beta = layer.qc_gamma.detach(), layer.qc_beta.detach()
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        wq = layer.weight_quant
        if wq is not None:
            # Snap latent weights onto the grid first, so round(w / s) gives the same integers
            # after both are scaled by gamma.
            step = wq.step.detach().clamp_min(1e-8)
            layer.weight.copy_(wq.integers(layer.weight) * step.view(shape) * gamma.view(shape))
            wq.step.copy_(step * gamma)
        else:
            layer.weight.mul_(gamma.view(shape))
        if layer.bias is None:
            layer.bias = nn.Parameter(beta.clone())
        else:
            layer.bias.mul_(gamma).add_(beta)
        layer.qc_gamma = None
        layer.qc_beta = None
    return model


@contextlib.contextmanager
def frozen(model: nn.Module, trainable: list[nn.Parameter]) -> Iterator[nn.Module]:
    """Eval mode that a training loop's ``model.train()`` cannot undo; only ``trainable`` learn.

    BN statistics must stay fixed while QC trains, whatever the task's training epoch does.
    """
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval()
    model.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    model.train = lambda mode=True: model  # type: ignore[method-assign]  # an instance attribute shadows nn.Module.train
    try:
        yield model
    finally:
        del model.train
        for p, flag in grads.items():
            p.requires_grad_(flag)
