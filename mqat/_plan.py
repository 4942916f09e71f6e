"""Bit plans: how many bits each module's weights and input activations get."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Bit-widths a quantizer supports; 32 stands for full precision (no quantizer).
FULL_PRECISION = 32
QUANT_BITS = (2, 3, 4, 5, 6, 7, 8)
VALID_BITS = QUANT_BITS + (FULL_PRECISION,)


def check_bits(value: Any, *, what: str) -> int:
    """Return ``value`` as a bit-width, or raise ValueError naming it and the accepted values."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in VALID_BITS:
        raise ValueError(
            f"{what} must be one of {list(VALID_BITS)} (32 = full precision), but got {value!r}"
        )
    return value


@dataclass(frozen=True)
class BitPlan:
    """Weight bits per module and input-activation bits (one int for all, or per module).

    A plan is data: it round-trips through JSON with :meth:`to_dict` / :meth:`from_dict`.

    Example::

        plan = BitPlan(weight_bits={"backbone": 4, "fpn": 2, "head": 4}, act_bits=8)
        plan.weight_bits["fpn"]      # 2
        plan.act_bits_of("head")     # 8
    """

    weight_bits: Mapping[str, int]
    act_bits: int | Mapping[str, int] = 8
    _act: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.weight_bits, Mapping) or not self.weight_bits:
            raise ValueError(
                f"weight_bits must be a non-empty mapping of module name -> bits, "
                f"but got {self.weight_bits!r}"
            )
        weights = {str(m): check_bits(b, what=f"weight bits for {m!r}")
                   for m, b in self.weight_bits.items()}
        if isinstance(self.act_bits, Mapping):
            acts = {str(m): check_bits(b, what=f"activation bits for {m!r}")
                    for m, b in self.act_bits.items()}
            extra = sorted(set(acts) - set(weights))
            missing = sorted(set(weights) - set(acts))
            if extra or missing:
                raise ValueError(
                    f"act_bits must name the same modules as weight_bits {sorted(weights)}, "
                    f"but it has extra {extra} and lacks {missing}"
                )
            act_field: int | Mapping[str, int] = MappingProxyType(acts)
        else:
            uniform = check_bits(self.act_bits, what="act_bits")
            acts = dict.fromkeys(weights, uniform)
            act_field = uniform
        object.__setattr__(self, "weight_bits", MappingProxyType(weights))
        object.__setattr__(self, "act_bits", act_field)
        object.__setattr__(self, "_act", MappingProxyType(acts))

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.weight_bits)

    def act_bits_of(self, module: str) -> int:
        """Input-activation bits of ``module``'s layers."""
        return self._act[module]

    def restricted_to(self, modules: Iterable[str]) -> BitPlan:
        """The plan with every module not in ``modules`` at full precision (weights and inputs)."""
        keep = set(modules)
        fp = FULL_PRECISION
        return BitPlan(
            weight_bits={m: b if m in keep else fp for m, b in self.weight_bits.items()},
            act_bits={m: b if m in keep else fp for m, b in self._act.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        act = self.act_bits if isinstance(self.act_bits, int) else dict(self.act_bits)
        return {"weight_bits": dict(self.weight_bits), "act_bits": act}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BitPlan:
        unknown = sorted(set(data) - {"weight_bits", "act_bits"})
        if unknown:
            raise ValueError(f"a bit plan has the keys 'weight_bits' and 'act_bits', but got {unknown}")
        if "weight_bits" not in data:
            raise ValueError("a bit plan needs 'weight_bits' (module name -> bits)")
        return cls(weight_bits=data["weight_bits"], act_bits=data.get("act_bits", 8))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __str__(self) -> str:
        bits = "-".join(str(b) for b in self.weight_bits.values())
        return f"W[{bits}] ({', '.join(self.weight_bits)})"
