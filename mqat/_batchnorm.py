"""BN re-estimation (Nagel et al., ICML 2022): running statistics that match the final weights.

Weights that oscillate during QAT leave BatchNorm running statistics averaged over weights the
model no longer has. Recomputing them on a few hundred training images, in train mode with no
gradient and a cumulative average, is nearly free and repairs much of what QC repairs.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ._calibrate import Forward, _default_forward


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Iterable, *, forward: Forward | None = None) -> nn.Module:
    """Recompute the running mean and variance of every BatchNorm layer from ``batches``.

    Statistics are reset and averaged cumulatively (``momentum=None``) over all batches, with
    the model in train mode and no gradient; the model's mode and BN momenta are restored.
    ``forward(model, batch)`` runs a batch (default ``model(batch)``, or ``model(batch[0])``
    for a tuple). A model without BatchNorm is returned unchanged. Returns ``model``.

    Example::

        mqat.reestimate_bn(result.model, [x for x, _ in train_batches][:16])
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return model
    batches = list(batches)
    if not batches:
        raise ValueError("reestimate_bn needs at least one batch")
    forward = forward or _default_forward
    momenta = [m.momentum for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for batch in batches:
            forward(model, batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return model
