"""NVIDIA ModelOpt 0.47.0's ``mtq.auto_quantize`` chooses per-layer weight bits:
``python -m bench.peers.modelopt_worker request.pt`` in ``.venv-peers/modelopt`` (``make peers``),
the project's source on PYTHONPATH.

The formats offered are the project's weight bit-widths as plain integer formats (per output
channel, like the project's LSQ), 8-bit inputs, max calibration. ``allow_no_quant: False`` makes it
give every layer a format; the task's first and last layers are ``disabled_layers`` (full precision
in every arm), which ModelOpt counts at 16 bits in its ``effective_bits``:
``budgets.modelopt_effective_bits`` converts each target. Scores are estimated once (its
``checkpoint`` keeps them); each target then solves its integer program on them.
"""
from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

PEER = "modelopt-autoquant"


def int_format(bits: int) -> dict:
    """An integer weight format of ``bits`` bits per output channel, 8-bit inputs."""
    return {"quant_cfg": [{"quantizer_name": "*weight_quantizer", "cfg": {"num_bits": bits, "axis": 0}},
                          {"quantizer_name": "*input_quantizer", "cfg": {"num_bits": 8, "axis": None}}],
            "algorithm": "max"}


def weight_bits(model, fp_bits: int = 32) -> dict[str, int]:
    """Each quantizable layer's weight bits after the search (``fp_bits`` where left unquantized)."""
    out = {}
    for name, module in model.named_modules():
        quantizer = getattr(module, "weight_quantizer", None)
        if quantizer is not None:
            out[name] = int(quantizer.num_bits) if quantizer.is_enabled else fp_bits
    return out


def choose(request, task, model, batches):
    import modelopt
    import modelopt.torch.quantization as mtq

    from bench.peers import budgets, worker

    formats = [int_format(b) for b in request.choices]
    loss = worker.output_loss(task)
    n, fp = sum(request.layers.values()), sum(request.fp_layers.values())
    plans = {}
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "custom quantization formats ... may not be optimal", once per format
        scores = Path(directory) / "scores.pth"  # estimated by the first target, read by the others
        for target in request.targets:
            effective = budgets.modelopt_effective_bits(target, n, fp)
            searched, _ = mtq.auto_quantize(
                copy.deepcopy(model), constraints={"effective_bits": effective}, quantization_formats=formats,
                data_loader=batches, forward_step=lambda m, batch: m(batch[0]), loss_func=loss,
                disabled_layers=list(request.fp_layers), num_calib_steps=len(batches),
                num_score_steps=len(batches), checkpoint=str(scores),
                module_search_spaces=[{"module_name_patterns": ["*"], "quantization_formats": formats,
                                       "allow_no_quant": False}])
            bits = {k: v for k, v in weight_bits(searched).items() if k in request.layers}
            plans[target] = {"bits": bits, "setting": {"effective_bits": round(effective, 4)}}
    return plans, PEER, modelopt.__version__, {}


if __name__ == "__main__":
    from bench.peers import worker

    raise SystemExit(worker.main(choose))
