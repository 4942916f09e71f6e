"""1. The fake-quant kernel: LSQ forward + backward on 4M float32 values, per tensor and per
channel, against the memory floor (``x * 1`` forward + backward) and torch's fused learnable
fake-quant ops; numerics checked against torch's ops in the same run."""
from __future__ import annotations

import torch

from mqat import _lsq
from mqat._lsq_kernel import cpu_kernel

from .timing import interleaved, row

SECTION = "kernel"


def _forward_backward(fn, x, grad, step=None):
    def run():
        out = fn()
        out.backward(grad)
        x.grad = None
        if step is not None:
            step.grad = None
    return run


def _case(per_channel: bool, n: int, device: str, rounds: int) -> list[dict]:
    channels = 1024 if per_channel else 1
    x = (torch.randn(channels, n // channels, device=device) * 0.5).requires_grad_(True)
    grad = torch.randn_like(x)
    step = torch.rand(channels, 1, device=device).add_(0.05) if per_channel \
        else torch.tensor([0.1], device=device)
    step.requires_grad_(True)
    zero = torch.zeros(channels, device=device)
    qmin, qmax, g = -8, 7, 1.0 / (x.numel() // channels * 7) ** 0.5

    def torch_op():
        if per_channel:
            return torch._fake_quantize_learnable_per_channel_affine(x, step.view(-1), zero, 0, qmin, qmax, g)
        return torch._fake_quantize_learnable_per_tensor_affine(x, step, zero, qmin, qmax, g)

    def ours():
        return _lsq.lsq_fake_quant(x, step, qmin, qmax, g)

    def ours_plain():  # the same formulas as torch ops (the fallback without the kernel)
        kernel, _lsq._use_kernel = _lsq._use_kernel, lambda *_: None
        try:
            return _lsq.lsq_fake_quant(x, step, qmin, qmax, g)
        finally:
            _lsq._use_kernel = kernel

    equal = _check_equal(ours, torch_op, x, step, grad)
    times = interleaved({"floor": _forward_backward(lambda: x * 1, x, grad),
                         "ours": _forward_backward(ours, x, grad, step),
                         "ours_plain": _forward_backward(ours_plain, x, grad, step),
                         "torch": _forward_backward(torch_op, x, grad, step)}, rounds=rounds)
    kind = "per-channel" if per_channel else "per-tensor"
    floor = times["floor"]
    rows = [row(SECTION, f"{kind}: x * 1 fwd+bwd (the floor)", floor, baseline="floor", ratio=1.0)]
    for name, label in [("ours", "mqat LSQ (fused kernel)" if device == "cpu" else "mqat LSQ"),
                        ("ours_plain", "mqat LSQ as torch ops"), ("torch", "torch fused learnable op")]:
        goal = "<= 3x floor" if name == "ours" and device == "cpu" else None
        ratio = times[name] / floor
        rows.append(row(SECTION, f"{kind}: {label}", times[name], baseline="floor", ratio=ratio,
                        goal=goal, met=(ratio <= 3.0) if goal else None,
                        numerics=equal if name == "ours" else None))
    return rows


def _check_equal(ours, torch_op, x, step, grad) -> str:
    results = []
    for fn in (ours, torch_op):
        out = fn()
        out.backward(grad)
        results.append((out.detach().clone(), x.grad.clone(), step.grad.clone()))
        x.grad, step.grad = None, None
    (a, ax, ast), (b, bx, bst) = results
    forward = torch.equal(a, b)
    grads = torch.equal(ax, bx) and torch.allclose(ast.view(-1), bst.view(-1), rtol=1e-4, atol=1e-6)
    return f"forward {'bit-identical' if forward else 'DIFFERS'}, gradients {'equal' if grads else 'DIFFER'}"


def run(quick: bool = False) -> list[dict]:
    n = 4 * 1024 * 1024
    rounds = 7 if quick else 25
    compiled = cpu_kernel() is not None
    rows = [row(SECTION, "fused CPU kernel available", None, note="yes" if compiled else "no (fallback)")]
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for per_channel in (False, True):
            rows += _case(per_channel, n, device, rounds)
    return rows
