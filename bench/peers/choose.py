"""Every arm's plans for one task: the mqat-search arm here, each peer in its own venv."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from . import mqat_arm, venvs
from .request import Request, save
from .rows import failed_row
from .tasks import context

#: a peer's worker is stopped after this long (the full pose task's HAWQ takes minutes)
TIMEOUT_S = 3600


#: the images a peer chooses on: those the mqat arm's sensitivity reads (validation). On training images
#: the digits resnet18 has fitted, ModelOpt's gradient scores fell to ~1e-7 and its integer program gave
#: one 14.4x plan for every target from 4x to 12x; on these validation batches it met 8x at 8.4x
SPLIT = "val"


def request_for(ctx, targets, quick: bool, split: str = SPLIT) -> Request:
    """What a peer is handed: the task, its FP weights, the layers, the project's bit choices, and the
    batches to choose on: as many as the project's sensitivity reads."""
    config = ctx.config
    count = config.search.sensitivity_batches if split == "val" else config.search.stage.calibration_batches
    return Request(config.task_name, config.task, str(config.cache_dir), ctx.fp_state, ctx.layers, ctx.fp_layers,
                   tuple(config.space.weight_bits), tuple(targets), count, quick=quick, split=split)


def _float_keys(choice: dict) -> dict:
    """A worker's JSON keys its plans by target as text."""
    return {**choice, "plans": {float(t): plan for t, plan in choice["plans"].items()}}


def choose_all(task_name: str, quick: bool, peers, targets) -> tuple[dict[str, dict], list[dict]]:
    """``({arm: choice}, rows of the peers that failed)``; a choice holds ``plans`` (target ->
    bits by layer and the peer's own setting) and ``choose_s``."""
    ctx = context(task_name, quick)
    choices = {mqat_arm.ARM: mqat_arm.choose(ctx, targets)}
    _progress(task_name, mqat_arm.ARM, choices[mqat_arm.ARM])
    failed = []
    with tempfile.TemporaryDirectory() as directory:
        path = save(request_for(ctx, targets, quick), Path(directory) / "request.pt")
        for peer in peers:
            try:
                choices[peer.arm] = _float_keys(venvs.run_worker(peer, path, timeout=TIMEOUT_S))
                _progress(task_name, peer.arm, choices[peer.arm])
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as err:
                failed.append(failed_row(task_name, peer.arm, err))
                print(f"[peers] {task_name}: {peer.arm} failed: {err}", file=sys.stderr, flush=True)
    return choices, failed


def _progress(task_name: str, arm: str, choice: dict) -> None:
    """A line per arm's choice, so a long run shows it is alive."""
    print(f"[peers] {task_name}: {arm} chose {len(choice['plans'])} plans in {choice['choose_s']:.0f} s",
          file=sys.stderr, flush=True)
