"""A trial's configuration (as Optuna and Tune hand it over) read as MQAT settings."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mqat

from .space import parse_order

UNIFORM = "uniform"  # the order value of baselines that quantize every module at once


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


def trial_settings(config: Mapping[str, Any], modules: Sequence[str], *,
                   ema_warmup_steps: int = 50) -> TrialSettings:
    """Interpret a point of the space; ValueError names what is missing or wrong."""
    try:
        bits = {m: int(config[f"bits_{m}"]) for m in modules}
        order = None if config["order"] == UNIFORM else parse_order(config["order"])
        ema = (mqat.EMAConfig(decay=float(config["ema_decay"]), warmup_steps=ema_warmup_steps)
               if config.get("ema") else None)
        qc = mqat.QCConfig(lr=float(config["qc_lr"])) if config.get("qc") else None
        return TrialSettings(mqat.BitPlan(bits, act_bits=int(config["act_bits"])), order, ema, qc,
                             float(config["lr"]), int(config["epochs_per_stage"]),
                             bn=bool(config.get("bn", False)), seed=int(config.get("seed", 0)))
    except KeyError as err:
        raise ValueError(f"trial configuration lacks {err.args[0]!r}: got {sorted(config)}") from None
