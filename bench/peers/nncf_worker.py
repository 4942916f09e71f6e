"""NNCF 2.19.0's HAWQ chooses per-layer weight bits: ``python -m bench.peers.nncf_worker request.pt``
in ``.venv-peers/nncf`` (``make peers``), the project's source on PYTHONPATH.

HAWQ ranks the layers by their Hessian traces, scores every bit sequence that does not fall along
that order (trace x quantization noise) and keeps the best one whose FLOPs-weighted
``compression_ratio`` meets the one asked for. That ratio does not map onto the project's weight
compression, so one HAWQ run records every candidate it scored (its ratio, metric and bits) and
the budget mapping (``budgets.hawq_plans``) replays HAWQ's own choice at every ratio the candidates
attain, keeping per target the one that lands nearest in the project's measure. HAWQ chooses
activation bits too (in its default mode); they are dropped: every arm trains at 8-bit activations.
"""
from __future__ import annotations

import os
import re

PEER = "nncf-hawq"
#: (images, Hutchinson iterations) of the Hessian traces: NNCF's defaults (100, 200); quick checks mechanics
TRACES = {"quick": (32, 10), "full": (100, 200)}


def layer_name(node_name: str) -> str:
    """The project's layer name of an NNCF node: its scopes' attribute names, e.g.
    ``PoseNet/Sequential[backbone]/NNCFConv2d[0]/conv2d_0`` -> ``backbone.0``."""
    return ".".join(re.findall(r"\[([^\]]+)\]", node_name))


def scope_regex(name: str) -> str:
    """An NNCF ``ignored_scopes`` pattern for the project's layer ``name``."""
    parts = "/".join(rf"[^/]*\[{re.escape(p)}\]" for p in name.split("."))
    return f"{{re}}^[^/]+/{parts}/"


def _config(request, shape, images: int, traces: tuple[int, int]):
    from nncf import NNCFConfig

    return NNCFConfig.from_dict({
        "input_info": {"sample_size": [1, *shape]},
        "target_device": "TRIAL",  # no hardware preset: every bit-width of the project's space allowed
        "compression": {
            "algorithm": "quantization",
            "ignored_scopes": [scope_regex(n) for n in request.fp_layers],  # kept at FP by every arm
            "initializer": {
                "range": {"num_init_samples": images},  # weight ranges: what the noise HAWQ weighs is measured with
                "batchnorm_adaptation": {"num_bn_adaptation_samples": 0},  # the project re-estimates BN itself
                "precision": {"type": "hawq", "bits": list(request.choices),
                              "num_data_points": traces[0], "iter_number": traces[1]}}}})


def _recording():
    """Patch HAWQ to keep what it scores (candidate sequences, their ratios and metrics)."""
    from nncf.torch.quantization.precision_init.hawq_init import HAWQPrecisionInitializer as HAWQ

    seen: dict = {}
    ratios, choose = HAWQ.get_compression_ratio_per_qconfig_sequence, HAWQ.choose_qconfig_sequence

    def record_ratios(self, sequences, traces_order):
        seen.update(initializer=self, sequences=sequences, order=traces_order)
        seen["ratios"] = ratios(self, sequences, traces_order)
        self._compression_ratio = min(seen["ratios"])  # any ratio it attains: all are replayed (budgets)
        return seen["ratios"]

    def record_metrics(metrics, compression_ratios, ratio):
        seen["metrics"] = [float(m) for m in metrics]
        return choose(metrics, compression_ratios, ratio)

    HAWQ.get_compression_ratio_per_qconfig_sequence = record_ratios
    HAWQ.choose_qconfig_sequence = staticmethod(record_metrics)
    return seen


def candidates(seen) -> list:
    """Every sequence HAWQ scored, with per-layer bits under the project's layer names."""
    from bench.peers.budgets import Candidate

    ids = list(seen["initializer"]._weight_quantizations_by_execution_order)
    names = [layer_name(i.target_node_name) for i in ids]
    out = []
    for sequence, ratio, metric in zip(seen["sequences"], seen["ratios"], seen["metrics"], strict=True):
        bits = [q.num_bits for q in seen["order"].get_execution_order_configs(sequence)]
        out.append(Candidate(float(ratio), metric, dict(zip(names, bits, strict=True))))
    return out


def choose(request, task, model, batches):
    os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")  # before nncf: 2.19.0 wraps no operators otherwise
    import nncf
    import torch
    from nncf.torch import create_compressed_model, register_default_init_args
    from torch.utils.data import DataLoader, TensorDataset

    from bench.peers import budgets, worker

    images = TensorDataset(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    loader = DataLoader(images, batch_size=len(batches[0][0]))
    loss = worker.output_loss(task)
    traces = TRACES["quick" if request.quick else "full"]
    config = register_default_init_args(_config(request, images[0][0].shape, len(images), traces), loader,
                                        criterion=lambda outputs, targets: loss(outputs, (None, targets)))
    seen = _recording()
    create_compressed_model(model, config)
    found = candidates(seen)
    named = {n for c in found for n in c.bits}
    if named != set(request.layers):  # the names are read from NNCF's scopes: a mismatch must not pass silently
        raise RuntimeError(f"NNCF's weight quantizers {sorted(named ^ set(request.layers))} differ from the "
                           "request's layers")
    picked = budgets.hawq_plans(found, request.layers, sum(request.fp_layers.values()), request.targets)
    plans = {t: {"bits": found[i].bits, "setting": {"compression_ratio": r}} for t, (r, i) in picked.items()}
    return plans, PEER, nncf.__version__, {"candidates": len(found), "trace_images": traces[0],
                                            "trace_iterations": traces[1]}


if __name__ == "__main__":
    from bench.peers import worker

    raise SystemExit(worker.main(choose))
