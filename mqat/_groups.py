"""Finer bit plans: each module split into layer groups, or into its layers, that get bits of
their own while the gradated flow still quantizes module by module."""
from __future__ import annotations

from collections.abc import Collection

from torch import Tensor, nn

from ._module_map import QUANTIZABLE, ModuleMap

GRANULARITIES = ("module", "group", "layer")


def _count(layer: nn.Module) -> int:
    """A conv's or a linear's weights."""
    weight = layer.weight
    assert isinstance(weight, Tensor)
    return weight.numel()


def _layers(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers inside ``module`` (itself included), by their names in the model."""
    return [(name, m) for name, m in module.named_modules(prefix=prefix) if isinstance(m, QUANTIZABLE)]


def blocks(model: nn.Module, *, kept: Collection[str] = (), parts: int = 3, root: str = "") -> list[tuple[str, int]]:
    """The blocks of ``model`` (or of its submodule ``root``) in order, each with the weights that
    will be quantized (its conv and linear weights, those of the layers in ``kept``, left at full
    precision, not counted): the children, any block holding more than ``1 / parts`` of those
    weights opened into its children, repeatedly, down to single layers where need be (a ResNet's
    last stage, a ``features`` wrapper). A block of kept layers alone holds 0."""
    def quantized(module: nn.Module, prefix: str) -> int:
        return sum(_count(layer) for name, layer in _layers(module, prefix) if name not in kept)

    top = model.get_submodule(root) if root else model
    total = quantized(top, root)
    found: list[tuple[str, int]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            qualified = f"{prefix}{name}"
            if not _layers(child, qualified):
                continue
            weights = quantized(child, qualified)
            inner, path = _through_wrappers(child, qualified)
            if weights > total / parts and inner is not None:
                visit(f"{path}.", inner)
            else:
                found.append((qualified, weights))

    if isinstance(top, QUANTIZABLE):
        return [(root, quantized(top, root))]
    visit(f"{root}." if root else "", top)
    return found


def _through_wrappers(module: nn.Module, name: str) -> tuple[nn.Module | None, str]:
    """The first module at or below ``module`` with two or more children holding layers (a
    wrapper's single child passed through), with its name; None if below is a single layer."""
    while True:
        holding = [(n, c) for n, c in module.named_children() if _layers(c, "")]
        if len(holding) >= 2:
            return module, name
        if not holding:
            return None, name
        child_name, module = holding[0]
        name = f"{name}.{child_name}"


def grouped(model: nn.Module, module_map: ModuleMap, granularity: str, *, parts: int = 4) -> ModuleMap:
    """``module_map`` with each module split into units of their own bits: ``module`` keeps the
    modules; ``group`` cuts each module into its blocks (:func:`blocks`, opening any block that
    holds more than ``1 / parts`` of the module's quantized weights: the pose backbone's stages,
    its last stage's convolutions, the FPN's levels); ``layer`` gives every conv and linear layer
    its own bits. Layers kept at full precision (``fp_first_last``) join a neighbouring unit:
    their bits are never read. Units are named ``<module>.<path>`` (the path without the
    module's own name), e.g. ``backbone.stages.3.0.conv2``.

    Example::

        fine = mqat.grouped(model, module_map, "group")
        fine.units       # ('backbone.stages.0', ..., 'fpn.smooth', 'head.body', ...)
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, but got {granularity!r}")
    if granularity == "module":
        return module_map
    kept = module_map.fixed_fp_layers(model)
    groups = {}
    for module, layers in module_map.layers(model).items():
        if granularity == "layer":
            found = [(name, 0 if name in kept else _count(layer)) for name, layer in layers]
        else:
            found = [b for p in module_map.prefixes[module] for b in _prefix_blocks(model, p, layers, kept, parts)]
        groups[module] = _units(module, _merge_kept(found))
    return ModuleMap(module_map.prefixes, fp_first_last=module_map.fp_first_last, groups=groups)


def _prefix_blocks(model, prefix: str, layers, kept, parts) -> list[tuple[str, int]]:
    """The blocks under one of a module's prefixes; a prefix that names no submodule is taken
    layer by layer."""
    try:
        model.get_submodule(prefix.rstrip("."))
    except AttributeError:
        return [(name, 0 if name in kept else _count(layer)) for name, layer in layers if name.startswith(prefix)]
    return blocks(model, kept=kept, parts=parts, root=prefix.rstrip("."))


def _merge_kept(found: list[tuple[str, int]]) -> list[tuple[str, list[str]]]:
    """Units as ``(name, blocks)``: blocks holding no quantized weight join the next block that
    holds some (the previous one at the end), so every unit's bits act on some weights; a unit is
    named after its block that holds them."""
    units: list[tuple[str, list[str]]] = []
    waiting: list[str] = []
    for name, weights in found:
        if weights == 0:
            waiting.append(name)
            continue
        units.append((name, [*waiting, name]))
        waiting = []
    if waiting:
        if units:
            units[-1][1].extend(waiting)
        else:
            units.append((waiting[0], waiting))
    return units


def _units(module: str, units: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Each unit's name, ``<module>.<path>``, and its prefixes."""
    out = {}
    for main, names in units:
        path = main[len(module) + 1:] if main.startswith(f"{module}.") else main
        out[f"{module}.{path}"] = [f"{n}." for n in names]
    return out
