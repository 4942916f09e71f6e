"""The search space: a pure define-by-run function of an Optuna trial.

What is searched and what is fixed comes from a :class:`SpaceConfig`; the function only asks
the trial for values and returns the fixed ones as constants (no computation), as Ray's
``OptunaSearch`` expects. Parameters, by name:

* ``order``: the quantization order, a permutation written ``"fpn>head>backbone"``, or, with
  ``joint: true``, also ``"uniform"``: every module at once (the same images, in one stage);
* ``bits_<module>``: weight bits of each module; ``act_bits`` if activations are searched;
* ``ema`` (bool) and, when on, ``ema_decay`` (log scale);
* ``qc`` (bool) and, when on, ``qc_lr`` (log scale);
* ``bn`` (bool): re-estimate BatchNorm statistics before the final scoring;
* ``lr``: the QAT learning rate (log scale); ``epochs_per_stage`` if searched.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from mqat import GRANULARITIES, QUANT_BITS, derive_seed

SEARCH = "search"
UNIFORM = "uniform"  # the order value of the joint flow: every module quantized at once, one stage
MAX_ORDER_MODULES = 5  # 5! = 120 orders; beyond that fix the order


def order_name(order) -> str:
    return ">".join(order)


def parse_order(name: str) -> list[str]:
    return name.split(">")


def _range(name: str, value, low: float, high: float) -> tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"space.{name} must be [low, high], but got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not low <= lo <= hi <= high:
        raise ValueError(f"space.{name} must satisfy {low} <= low <= high <= {high}, but got {value!r}")
    return lo, hi


def _switch(name: str, value) -> None:
    if value not in (SEARCH, True, False):
        raise ValueError(f"space.{name} must be 'search', true or false, but got {value!r}")


@dataclass(frozen=True)
class SpaceConfig:
    """What the search explores. ``modules`` are filled in from the task's module map."""

    modules: tuple[str, ...] = ()
    #: what gets bits of its own: group (each module's layer groups: a backbone's stages, its last
    #: stage's convolutions, the FPN's levels; the default, measured in docs/benchmarks.md), module
    #: (each module one bit-width) or layer (every conv and linear layer); the order is per module
    #: at every granularity
    granularity: str = "group"
    units: tuple[str, ...] = ()  # the groups or layers bits are given to (filled in from the model)
    order: Any = SEARCH  # search, or a fixed list of the modules, e.g. [fpn, head, backbone]
    joint: bool = False  # the joint flow is one of the searched orders (the recorded benchmark's grid)
    weight_bits: tuple[int, ...] = (2, 3, 4, 6, 8)  # the weight bits a module may get
    act_bits: Any = 8  # activation bits: a number, or a list of them to search
    ema: Any = SEARCH  # an EMA of the weights is the model: search, true or false
    ema_decay: tuple[float, ...] = (0.99, 0.9999)  # [low, high] of the EMA's decay, searched on a log scale
    qc: Any = SEARCH  # QC, the post-QAT correction: search, true or false
    qc_lr: tuple[float, ...] = (1e-4, 1e-2)  # [low, high] of QC's learning rate (log scale)
    bn: Any = SEARCH  # re-estimate BN statistics before the final scoring: search, true or false
    lr: tuple[float, ...] = (2e-5, 5e-4)  # [low, high] of the QAT learning rate (log scale); small: a converged FP model
    epochs_per_stage: Any = 1  # fine-tuning epochs after each module: a number, or a list to search

    def __post_init__(self) -> None:
        bits = tuple(self.weight_bits)
        if not bits or any(isinstance(b, bool) or b not in QUANT_BITS for b in bits):
            raise ValueError(f"space.weight_bits must be a list of bits among {list(QUANT_BITS)}, "
                             f"but got {list(bits)}")
        acts = self.act_bits if isinstance(self.act_bits, (list, tuple)) else [self.act_bits]
        if not acts or any(isinstance(b, bool) or b not in QUANT_BITS + (32,) for b in acts):
            raise ValueError(f"space.act_bits must be bits among {list(QUANT_BITS) + [32]} "
                             f"(or a list of them), but got {self.act_bits!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"space.granularity must be one of {list(GRANULARITIES)}, but got {self.granularity!r}")
        if not isinstance(self.joint, bool):
            # a config's errors are ValueErrors (ConfigError, one line and exit 2), not TypeErrors
            raise ValueError(f"space.joint must be true or false, but got {self.joint!r}")  # noqa: TRY004
        if self.joint and self.order != SEARCH:
            raise ValueError("space.joint adds the joint flow to the searched orders, but space.order is "
                             f"fixed to {self.order!r}: set space.order: search, or space.joint: false")
        _switch("ema", self.ema)
        _switch("qc", self.qc)
        _switch("bn", self.bn)
        _range("ema_decay", self.ema_decay, 0.5, 0.999999)
        _range("qc_lr", self.qc_lr, 1e-7, 1.0)
        _range("lr", self.lr, 1e-7, 1.0)
        epochs = self.epochs_per_stage if isinstance(self.epochs_per_stage, (list, tuple)) \
            else [self.epochs_per_stage]
        if not epochs or any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in epochs):
            raise ValueError(f"space.epochs_per_stage must be an integer >= 1 (or a list of them), "
                             f"but got {self.epochs_per_stage!r}")
        if self.modules:
            self.check_modules(self.modules)

    def check_modules(self, modules) -> None:
        if self.order == SEARCH:
            if len(modules) > MAX_ORDER_MODULES:
                raise ValueError(f"searching the order supports at most {MAX_ORDER_MODULES} modules "
                                 f"(the task has {len(modules)}): give space.order as a list")
            return
        order = list(self.order) if isinstance(self.order, (list, tuple)) else None
        if order is None:
            raise ValueError(f"space.order must be 'search' or a list of modules, but got {self.order!r}")
        unknown = [m for m in order if m not in modules]
        if unknown:
            raise ValueError(f"space.order names {unknown}, which are not modules of the task "
                             f"{list(modules)}")
        repeated = sorted({m for m in order if order.count(m) > 1})
        if repeated:
            raise ValueError(f"space.order repeats module(s) {repeated}")
        missing = [m for m in modules if m not in order]
        if missing:
            raise ValueError(f"space.order must list every module once; it lacks {missing}")

    @property
    def bit_units(self) -> tuple[str, ...]:
        """What the bits_* parameters name: the groups or layers, or the modules."""
        return self.units or self.modules

    @property
    def top_act_bits(self) -> int:
        """The activation bits used where they are not searched (the highest of a list)."""
        return max(self.act_bits) if isinstance(self.act_bits, (list, tuple)) else self.act_bits

    @property
    def fewest_epochs(self) -> int:
        """Epochs per stage used where they are not searched (the fewest of a list)."""
        e = self.epochs_per_stage
        return min(e) if isinstance(e, (list, tuple)) else e

    def orders(self) -> list[str]:
        """The orders searched: every permutation of the modules, and the joint flow if asked."""
        return [order_name(p) for p in itertools.permutations(self.modules)] + ([UNIFORM] if self.joint else [])


def define_space(trial, space: SpaceConfig) -> dict[str, Any]:
    """Ask ``trial`` for one configuration; return the fixed settings as constants."""
    fixed: dict[str, Any] = {}
    if space.order == SEARCH:
        trial.suggest_categorical("order", space.orders())
    else:
        fixed["order"] = order_name(space.order)
    for unit in space.bit_units:
        trial.suggest_categorical(f"bits_{unit}", list(space.weight_bits))
    if isinstance(space.act_bits, (list, tuple)):
        trial.suggest_categorical("act_bits", list(space.act_bits))
    else:
        fixed["act_bits"] = space.act_bits
    for name, rate, kind in (("ema", "ema_decay", "decay"), ("qc", "qc_lr", "lr")):
        switch = getattr(space, name)
        on = trial.suggest_categorical(name, [True, False]) if switch == SEARCH else switch
        if switch != SEARCH:
            fixed[name] = switch
        if on:
            trial.suggest_float(rate, *getattr(space, rate), log=True)
    if space.bn == SEARCH:
        trial.suggest_categorical("bn", [True, False])
    else:
        fixed["bn"] = space.bn
    trial.suggest_float("lr", *space.lr, log=True)
    if isinstance(space.epochs_per_stage, (list, tuple)):
        trial.suggest_categorical("epochs_per_stage", list(space.epochs_per_stage))
    else:
        fixed["epochs_per_stage"] = space.epochs_per_stage
    return fixed


def with_trial_seed(trial, space_function, seed: int) -> dict[str, Any]:
    """``space_function(trial)`` plus the trial's own ``seed``, derived from the search's seed
    and the trial's number: it fixes the trial's data order, augmentation and calibration
    sample, and a rerun with it trains the same model."""
    return {**(space_function(trial) or {}), "seed": derive_seed(seed, trial.number)}
