"""An exported ONNX model run in its runtime, behind the torch module it was exported from: so that
whatever scores the torch model (a task's ``evaluate``) scores the deployed file as it runs."""
from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ._latency import runner


class OnnxModel(nn.Module):
    """``forward(x)`` runs the ONNX file at ``path`` in ``runtime`` (ONNX Runtime with its default
    graph optimizations, or OpenVINO) on CPU and returns its outputs as ``like`` returns its own
    (the same nesting of tuples, lists and dicts), on ``x``'s device. ``float_precision``: see
    :func:`mqat.onnx_runner` (OpenVINO's float layers; bf16 by default on CPUs that have it).

    Example::

        deployed = mqat.OnnxModel("model.onnx", like=model, example_input=images[:1])
        task.evaluate(deployed, split="test")    # the metric of the file as deployed
    """

    def __init__(self, path: str | os.PathLike, *, like: nn.Module, example_input: Tensor,
                 runtime: str = "onnxruntime", threads: int = 1, float_precision: str | None = None):
        super().__init__()
        with torch.no_grad():
            _, self._spec = tree_flatten(like.eval()(example_input))
        self._run, self.provider = runner(path, runtime=runtime, threads=threads, device="cpu",
                                          float_precision=float_precision)
        self.register_buffer("_device_marker", torch.zeros(()), persistent=False)  # follows .to()

    def forward(self, x: Tensor):
        result = self._run(x.detach().cpu().float().numpy())
        arrays = result.to_tuple() if hasattr(result, "to_tuple") else result  # OpenVINO's dict, or a list
        return tree_unflatten([torch.from_numpy(a.copy()).to(x.device) for a in arrays], self._spec)
