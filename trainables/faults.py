"""Fault injection: make chosen trials fail for real, to check that a search survives them.

``MQAT_INJECT_FAULTS="1:nan,3:oom,4:error"`` (read on the driver, shipped to the trials) makes
the first trial of the search diverge, the third fail to allocate memory and the fourth raise,
in their first training epoch (and again when Tune retries them). ``kill`` is a crash at a known
moment: the trial's worker process dies by SIGKILL in its first epoch after its first stage
checkpoint was reported, once (the retry that resumes from that checkpoint goes on; a retry that
started from scratch would die again). A trial's number is the one Tune puts in its directory
name, ``train_mqat_<id>_<number>_<config>``. Nothing is faked downstream: the NaN goes through
the real forward pass and loss check, the allocation is a real request to the device's
allocator that no machine can grant, and the killed worker is a real dead process to Ray.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping

import torch

VARIABLE = "MQAT_INJECT_FAULTS"
KINDS = ("nan", "oom", "error", "kill")
_IMPOSSIBLE_BYTES = 1 << 48  # 256 TiB: beyond any RAM, GPU memory or 47-bit address space


def parse_faults(text: str | None) -> dict[int, str]:
    """``"1:nan,3:oom"`` -> ``{1: "nan", 3: "oom"}``; ``ValueError`` with the reason otherwise."""
    faults: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        index, _, kind = item.partition(":")
        if not index.strip().isdigit() or kind.strip() not in KINDS:
            raise ValueError(f"{VARIABLE}: {item!r} is not TRIAL:KIND with TRIAL a trial number "
                             f"and KIND one of {', '.join(KINDS)}")
        faults[int(index)] = kind.strip()
    return faults


def faults_from_environment() -> dict[int, str]:
    return parse_faults(os.environ.get(VARIABLE))


def trial_number(trial_dir_name: str, trial_id: str) -> int | None:
    """The counter Tune puts after the id: ``("train_mqat_3f2a_4_lr=0.1", "3f2a")`` -> 4."""
    _, found, tail = trial_dir_name.partition(f"{trial_id}_")
    number = tail.split("_", 1)[0]
    return int(number) if found and number.isdigit() else None


def _inject(kind: str, model: torch.nn.Module) -> None:
    if kind == "nan":  # poison one weight: the loss becomes NaN through the real forward pass
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    elif kind == "oom":
        device = next(model.parameters()).device
        torch.empty(_IMPOSSIBLE_BYTES, dtype=torch.uint8, device=device)
    else:
        raise RuntimeError("injected fault: this trial raises on purpose")


def with_fault(train_epoch: Callable, kind: str | None, *, resumed: bool = False,
               checkpointed: Callable[[], bool] = lambda: False) -> Callable:
    """``train_epoch`` that injects ``kind`` (if any) before each epoch: the first one fails.
    ``kill`` waits for the first epoch after ``checkpointed()`` turns true, and never fires in a
    ``resumed`` run."""
    if kind is None or (kind == "kill" and resumed):
        return train_epoch

    def faulty(model, optimizer, on_step):
        if kind != "kill":
            _inject(kind, model)
        elif checkpointed():  # Tune holds the checkpoint: its report returned (synchronous reporting)
            os.kill(os.getpid(), signal.SIGKILL)
        return train_epoch(model, optimizer, on_step)
    return faulty


def fault_for(faults: Mapping[int, str], trial_dir_name: str, trial_id: str) -> str | None:
    number = trial_number(trial_dir_name, trial_id)
    return faults.get(number) if number is not None else None
