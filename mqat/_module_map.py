"""Module maps: which layers of a network belong to which module (backbone, FPN, head...)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from torch import nn

from ._plan import BitPlan

#: Layer types whose weights MQAT quantizes (their Quant* subclasses included).
QUANTIZABLE = (nn.Conv2d, nn.Linear)


class ModuleMap:
    """Names the modules of a network by layer-name prefixes.

    Every conv and linear layer must belong to exactly one module; :meth:`validate` names the
    first layer that does not. With ``fp_first_last=True`` the network's first and last
    quantizable layers stay at full precision, whatever the plan says.

    Example::

        mm = ModuleMap({"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]})
        mm.validate(model)
        mm.layers(model)["fpn"]   # [("fpn.lateral.0", Conv2d(...)), ...]
    """

    def __init__(self, modules: Mapping[str, Sequence[str]], *, fp_first_last: bool = False,
                 groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None):
        if not isinstance(modules, Mapping) or not modules:
            raise ValueError(
                "a module map needs at least one module, e.g. "
                "{'backbone': ['backbone.'], 'head': ['head.']}, but got "
                f"{modules!r}"
            )
        self.prefixes: dict[str, tuple[str, ...]] = {}
        for name, prefixes in modules.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"module names must be non-empty strings, but got {name!r}")
            if isinstance(prefixes, str):
                prefixes = [prefixes]
            if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
                raise ValueError(
                    f"module {name!r} needs a list of non-empty layer-name prefixes, "
                    f"but got {prefixes!r}"
                )
            self.prefixes[name] = tuple(prefixes)
        self.fp_first_last = bool(fp_first_last)
        self.groups: dict[str, dict[str, tuple[str, ...]]] = {}
        for module, units in (groups or {}).items():
            if module not in self.prefixes:
                raise ValueError(f"groups name module {module!r}, which is not one of {list(self.prefixes)}")
            if not units:
                raise ValueError(f"module {module!r} needs at least one group, but got none")
            self.groups[module] = {str(u): (p,) if isinstance(p, str) else tuple(p) for u, p in units.items()}
        if self.groups and set(self.groups) != set(self.prefixes):
            raise ValueError(f"groups must split every module {list(self.prefixes)}, but split only {list(self.groups)}")
        names = [u for units in self.groups.values() for u in units]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be unique, but got {names}")

    @property
    def names(self) -> tuple[str, ...]:
        """The modules, in network order: what an order of the gradated flow lists."""
        return tuple(self.prefixes)

    @property
    def units(self) -> tuple[str, ...]:
        """What a bit plan gives bits to: the groups of each module, in order, where the map has
        groups (bits per layer group, the module order kept); else the modules themselves."""
        if not self.groups:
            return self.names
        return tuple(u for m in self.names for u in self.groups[m])

    def units_of(self, module: str) -> tuple[str, ...]:
        """The units a module's bits are given by: its groups, or the module alone."""
        return tuple(self.groups[module]) if self.groups else (module,)

    def module_of(self, unit: str) -> str:
        """The module a unit belongs to."""
        if not self.groups:
            return unit
        return next(m for m, units in self.groups.items() if unit in units)

    def unit_of(self, layer_name: str, module: str | None = None) -> str:
        """The unit whose bits ``layer_name`` gets (within ``module`` if known)."""
        module = module or self.owners(layer_name)[0]
        if not self.groups:
            return module
        found = [u for u, prefixes in self.groups[module].items() if _matches(layer_name, prefixes)]
        if len(found) != 1:
            where = "no group" if not found else f"several groups {found}"
            raise ValueError(f"layer {layer_name!r} of module {module!r} falls in {where}: "
                             f"make its groups cover its layers once")
        return found[0]

    def __contains__(self, name: object) -> bool:
        return name in self.prefixes

    def __repr__(self) -> str:
        return f"ModuleMap({self.prefixes!r}, fp_first_last={self.fp_first_last})"

    def to_dict(self) -> dict:
        out: dict = {"modules": {m: list(p) for m, p in self.prefixes.items()},
                     "fp_first_last": self.fp_first_last}
        if self.groups:
            out["groups"] = {m: {u: list(p) for u, p in units.items()} for m, units in self.groups.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ModuleMap:
        return cls(data["modules"], fp_first_last=data.get("fp_first_last", False), groups=data.get("groups"))

    def owners(self, layer_name: str) -> list[str]:
        """The modules whose prefixes match ``layer_name``."""
        return [m for m, prefixes in self.prefixes.items() if _matches(layer_name, prefixes)]

    def quantizable(self, model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
        """Every conv and linear layer of ``model``, ``(name, layer)``, in model order."""
        return ((n, mod) for n, mod in model.named_modules() if isinstance(mod, QUANTIZABLE))

    def validate(self, model: nn.Module) -> None:
        """Raise ValueError naming the first conv/linear layer that is in no module or in two."""
        layers = list(self.quantizable(model))
        if not layers:
            raise ValueError("the model has no Conv2d or Linear layer to quantize")
        for name, _ in layers:
            owners = self.owners(name)
            if not owners:
                raise ValueError(
                    f"layer {name!r} belongs to no module: add a prefix for it to one of "
                    f"{list(self.names)}"
                )
            if len(owners) > 1:
                raise ValueError(
                    f"layer {name!r} belongs to several modules {owners}: make the prefixes "
                    "disjoint"
                )
            self.unit_of(name, owners[0])

    def layers(self, model: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
        """Module name -> its ``(layer name, layer)`` pairs, in model order (validates first)."""
        self.validate(model)
        grouped: dict[str, list[tuple[str, nn.Module]]] = {m: [] for m in self.names}
        for name, layer in self.quantizable(model):
            grouped[self.owners(name)[0]].append((name, layer))
        return grouped

    def fixed_fp_layers(self, model: nn.Module) -> set[str]:
        """Names of layers kept at full precision by the ``fp_first_last`` switch."""
        return self.first_and_last(model) if self.fp_first_last else set()

    @staticmethod
    def first_and_last(model: nn.Module) -> set[str]:
        """The names of the network's first and last conv or linear layers (in model order)."""
        names = [n for n, mod in model.named_modules() if isinstance(mod, QUANTIZABLE)]
        return {names[0], names[-1]} if names else set()

    def check_plan(self, plan: BitPlan) -> None:
        """Raise ValueError unless ``plan`` names exactly this map's units (its modules, or
        their groups)."""
        what = "group" if self.groups else "module"
        unknown = [m for m in plan.modules if m not in self.units]
        if unknown:
            raise ValueError(
                f"plan names {what}(s) {unknown} that are not in the module map "
                f"{list(self.units)}"
            )
        missing = [m for m in self.units if m not in plan.weight_bits]
        if missing:
            raise ValueError(
                f"plan has no bits for {what}(s) {missing}; it must give bits for every {what} "
                f"of {list(self.units)}"
            )

    def check_modules(self, modules: Sequence[str], *, what: str = "modules") -> list[str]:
        """Return ``modules`` as a list, raising ValueError on an unknown or repeated name."""
        if isinstance(modules, str):
            modules = [modules]
        modules = list(modules)
        for m in modules:
            if m not in self.prefixes:
                raise ValueError(f"{what} names {m!r}, which is not one of {list(self.names)}")
        repeated = sorted({m for m in modules if modules.count(m) > 1})
        if repeated:
            raise ValueError(f"{what} repeats module(s) {repeated}")
        return modules


def _matches(layer_name: str, prefixes: Sequence[str]) -> bool:
    """Whether a layer's name starts with one of ``prefixes`` (or is one, without its dot)."""
    return any(layer_name.startswith(p) or layer_name == p.rstrip(".") for p in prefixes)
