"""The network of a classify task: a builder named by import path, and its automatic module map."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from .torchvision_compat import import_torchvision, needs_torchvision

AUTO_NAMES = ("stem", "body", "head")


def builder(path: str) -> Callable[..., nn.Module]:
    """The callable ``module:name`` names (``torchvision.models:resnet18``, ``timm:create_model``,
    a user's ``my_nets:build``); ValueError with one line where it cannot be found."""
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"task.model must be 'module:callable', e.g. 'torchvision.models:resnet18', but got {path!r}")
    try:
        if needs_torchvision(module_name):
            import_torchvision()
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure of the named module is reported as one line
        raise ValueError(f"task.model: cannot import {module_name!r}: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ValueError(f"task.model: {module_name!r} has no callable {name!r}")  # noqa: TRY004 - a config error
    return target


def quantizable_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def blocks(model: nn.Module) -> list[tuple[str, int]]:
    """The network's blocks in order, with their conv/linear weights: the root's children, any
    block holding more than half of all such weights opened into its own children, repeatedly
    (so that one ``features`` wrapper does not make a single block)."""
    total = quantizable_weights(model)
    found: list[tuple[str, int]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            weights, qualified = quantizable_weights(child), f"{prefix}{name}"
            if weights == 0:
                continue
            opened = [c for c in child.children() if quantizable_weights(c)]
            if weights > total / 2 and len(opened) > 1:
                visit(f"{qualified}.", child)
            else:
                found.append((qualified, weights))

    visit("", model)
    return found


def auto_modules(model: nn.Module) -> dict[str, list[str]]:
    """``stem`` / ``body`` / ``head``: the blocks (:func:`blocks`) cut at the two boundaries that
    make the three shares of the weights most equal (the largest share the smallest); each
    module's prefixes are its blocks' names."""
    found = blocks(model)
    if len(found) < len(AUTO_NAMES):
        raise ValueError(f"task.modules: auto needs at least {len(AUTO_NAMES)} blocks holding conv or linear layers, "
                         f"but the network has {len(found)}: give the modules as prefixes")
    weights = [w for _, w in found]
    best = min(((i, j) for i in range(1, len(found) - 1) for j in range(i + 1, len(found))),
               key=lambda cut: max(sum(weights[:cut[0]]), sum(weights[cut[0]:cut[1]]), sum(weights[cut[1]:])))
    groups = (found[:best[0]], found[best[0]:best[1]], found[best[1]:])
    return {name: [f"{block}." for block, _ in group] for name, group in zip(AUTO_NAMES, groups)}
