"""A trial's configuration (as Optuna and Tune hand it over) read as MQAT settings."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mqat

from .space import UNIFORM, parse_order


@dataclass(frozen=True)
class TrialSettings:
    """What :func:`mqat.run_mqat` needs from one point of the space."""

    plan: mqat.BitPlan
    order: list[str] | None
    ema: mqat.EMAConfig | None
    qc: mqat.QCConfig | None
    lr: float
    epochs_per_stage: int
    bn: bool = False
    seed: int = 0

    def describe(self) -> str:
        order = ">".join(self.order) if self.order else UNIFORM
        extras = [f"ema {self.ema.decay:.4g}" if self.ema else "", f"qc {self.qc.lr:.2g}" if self.qc else "",
                  "bn" if self.bn else "", f"seed {self.seed}"]
        return f"{order} {self.plan} " + " ".join(e for e in extras if e)


def weight_bits(config: Mapping[str, Any], modules: Sequence[str] | None = None) -> dict[str, int]:
    """The point's weight bits by module, in ``modules``' order (the network's; Tune and JSON
    sort keys, so the config's own order is alphabetical); every ``bits_*`` key if not given."""
    if modules is None:
        modules = [k[len("bits_"):] for k in config if k.startswith("bits_")]
    return {m: int(config[f"bits_{m}"]) for m in modules}


def describe_point(config: Mapping[str, Any], modules: Sequence[str] | None = None) -> str:
    """A point in a few words: order, weight bits by module, EMA, QC and BN."""
    bits = "-".join(str(b) for b in weight_bits(config, modules).values())
    parts = [str(config.get("order", "?")), f"W[{bits}]"]
    if config.get("ema"):
        parts.append(f"ema {config.get('ema_decay', 0):.4g}")
    if config.get("qc"):
        parts.append(f"qc {config.get('qc_lr', 0):.2g}")
    if config.get("bn"):
        parts.append("bn")
    return " ".join(parts)


def trial_settings(config: Mapping[str, Any], modules: Sequence[str], *,
                   ema_warmup_steps: int = 50) -> TrialSettings:
    """Interpret a point of the space; ValueError names what is missing or wrong."""
    try:
        bits = weight_bits(config, modules)
        order = None if config["order"] == UNIFORM else parse_order(config["order"])
        ema = (mqat.EMAConfig(decay=float(config["ema_decay"]), warmup_steps=ema_warmup_steps)
               if config.get("ema") else None)
        qc = mqat.QCConfig(lr=float(config["qc_lr"])) if config.get("qc") else None
        return TrialSettings(mqat.BitPlan(bits, act_bits=int(config["act_bits"])), order, ema, qc,
                             float(config["lr"]), int(config["epochs_per_stage"]),
                             bn=bool(config.get("bn", False)), seed=int(config.get("seed", 0)))
    except KeyError as err:
        raise ValueError(f"trial configuration lacks {err.args[0]!r}: got {sorted(config)}") from None
