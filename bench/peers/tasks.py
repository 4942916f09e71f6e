"""The section's tasks and what every arm of one task shares: the config (at ``space.granularity:
layer``, the unit every peer gives bits to), the task, its cached FP weights, the layers that get
bits and those kept at full precision."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import mqat
    from search.config import Config
    from trainables.tasks import Task

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits.yaml"


def _pose(quick: bool) -> dict:
    from bench import searches

    return searches.base_config(quick, cheap=False)  # the quickstart's trial budget (512 images a stage)


def _classify(quick: bool) -> dict:
    """examples/digits.yaml: torchvision's resnet18 on the digits folder (examples/digits_to_folder.py)."""
    data = yaml.safe_load(DIGITS.read_text())
    data["task"]["data"] = str(ROOT / data["task"]["data"])
    return {**data, "output_dir": str(ROOT / "bench" / "runs" / "digits")}


#: task -> its bench config; ``--quick`` runs the tiny pose task only
TASKS = {"pose": _pose, "classify": _classify}


def task_data(task_name: str, quick: bool) -> dict:
    """The task's bench config as a user runs it, its cache (a relative path) under the repository."""
    data = TASKS[task_name](quick)
    cache = Path(data.get("cache_dir", "data"))
    return {**data, "cache_dir": str(cache if cache.is_absolute() else ROOT / cache)}


def config_data(task_name: str, quick: bool) -> dict:
    """The task's config at layer granularity, tracking off, no search settings beyond its stage."""
    data = task_data(task_name, quick)
    search = {k: v for k, v in (data.get("search") or {}).items() if k != "scheduler"}  # no search runs here
    return {**data, "search": search, "space": {**(data.get("space") or {}), "granularity": "layer"},
            "tracking": {"enabled": False}}


@dataclass
class Context:
    """One task as every arm sees it."""

    config: Config
    task: Task
    fp_state: dict
    units_map: mqat.ModuleMap  # at layer granularity: a unit per layer
    layers: dict[str, int]  # layer -> weights, the layers that get bits, in network order
    fp_layers: dict[str, int]  # layer -> weights, kept at full precision (first, last)

    @property
    def lr(self) -> float:
        """The QAT learning rate of the search's seed points: the middle of the space's log range."""
        low, high = self.config.space.lr
        return math.sqrt(low * high)

    def plan(self, bits: dict[str, int]) -> mqat.BitPlan:
        """A per-layer bits dict (the project's layer names) as a BitPlan of the layer units."""
        import mqat

        weight_bits = {self.units_map.unit_of(name): b for name, b in bits.items() if name in self.layers}
        return mqat.BitPlan(weight_bits, act_bits=self.config.space.top_act_bits)


@functools.lru_cache(maxsize=2)
def context(task_name: str, quick: bool) -> Context:
    """Built once per process: checks the config, pretrains or loads the cached FP model."""
    import mqat
    from search.config import config_from_dict
    from search.prepare import check
    from trainables.pretrain import load_state_dict, pretrain

    config = config_from_dict(config_data(task_name, quick))
    checked = check(config, progress=False)
    task = checked.task
    fp = pretrain(task, config.pretrain, cache_dir=config.cache_dir, progress=False)
    task.prepare_data()
    model = task.build_model()
    fixed = task.module_map.fixed_fp_layers(model)
    every = [(n, layer.get_parameter("weight").numel()) for pairs in task.module_map.layers(model).values() for n, layer in pairs]
    return Context(config, task, load_state_dict(fp.checkpoint), mqat.grouped(model, task.module_map, "layer"),
                   {n: c for n, c in every if n not in fixed}, {n: c for n, c in every if n in fixed})
