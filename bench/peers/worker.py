"""What both peer workers share (they run in a peer's venv, with the project's source on PYTHONPATH):
the task, its FP model and the batches to choose on from a request, the task's loss on given outputs, and
the one line of JSON a worker prints."""
from __future__ import annotations

import json
import sys
import time
from typing import Any

#: the prefix of the worker's result line on stdout (the peers log there too)
MARKER = "PEER-RESULT "


def setup(request):
    """The task (on CPU), its FP model in eval mode, and the batches to choose on (``request.split``)."""
    import torch

    from trainables.tasks import get_task

    torch.manual_seed(request.seed)
    task = get_task(request.task_name)(request.task_config, cache_dir=request.cache_dir, device="cpu",
                                       progress=False)
    model = task.build_model()
    model.load_state_dict(request.fp_state)
    batches = task.sensitivity_batches if request.split == "val" else task.train_batches
    return task, model.eval(), batches(request.batches)


def output_loss(task):
    """``loss(outputs, batch)``: the task's own loss on outputs a peer already computed (a task's
    loss runs the model once on ``batch[0]``, so a stand-in model that returns them is enough)."""
    return lambda outputs, batch: task.loss_fn(lambda _inputs: outputs, batch)


def emit(peer: str, version: str, plans: dict[float, dict[str, Any]], choose_s: float, **extra) -> None:
    """Print the result line: per target, the per-layer weight bits (the project's layer names)."""
    result = {"peer": peer, "version": version, "choose_s": round(choose_s, 2),
              "plans": {str(t): p for t, p in plans.items()}, **extra}
    print(MARKER + json.dumps(result), flush=True)


def main(choose) -> int:
    """``python -m bench.peers.<peer>_worker request.pt``: set the task up, then time
    ``choose(request, task, model, batches) -> (plans, peer, version, extra)`` alone."""
    from bench.peers.request import load

    request = load(sys.argv[1])
    task, model, batches = setup(request)
    start = time.perf_counter()
    plans, peer, version, extra = choose(request, task, model, batches)
    emit(peer, version, plans, time.perf_counter() - start, **extra)
    return 0
