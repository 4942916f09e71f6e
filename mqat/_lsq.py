"""LSQ: learned step size quantization (Esser et al., ICLR 2020).

Forward, per element: ``q = clamp(round(v / s), -Qn, Qp)``, ``v_hat = q * s``.
Backward (straight-through estimator for round):

* ``d v_hat / d v = 1`` where ``round(v / s)`` lies in ``[-Qn, Qp]``, else 0;
* ``d v_hat / d s = q - v / s`` inside the range, ``-Qn`` or ``Qp`` where clipped,
  scaled by ``g = 1 / sqrt(N * Qp)`` with N the number of elements one step covers.

Signed b bits: ``Qn = 2^(b-1)``, ``Qp = 2^(b-1) - 1``; unsigned: ``Qn = 0``, ``Qp = 2^b - 1``.
``v / s`` is computed as ``v * (1 / s)``, as torch's fused learnable fake-quant ops do, so the
forward matches them bit for bit.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._lsq_kernel import cpu_kernel
from ._plan import QUANT_BITS

_MIN_STEP = 1e-8


def quant_range(bits: int, signed: bool) -> tuple[int, int]:
    """``(-Qn, Qp)``: the smallest and largest integer level of a ``bits``-bit quantizer."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def mse_step(values: Tensor, qmin: int, qmax: int, *, candidates: int = 100) -> Tensor:
    """Per row of ``values`` (rows x n), the step among ``candidates`` fractions of the max-abs
    step whose fake quantization ``clamp(round(v / s), qmin, qmax) * s`` errs least (squared)."""
    top = values.abs().amax(dim=1).clamp_min(_MIN_STEP) / max(qmax, -qmin)
    best_step, best_error = top.clone(), torch.full_like(top, math.inf)
    for fraction in torch.linspace(1.0 / candidates, 1.0, candidates).tolist():
        step = (top * fraction).unsqueeze(1)
        error = ((values / step).round().clamp(qmin, qmax) * step - values).pow(2).sum(dim=1)
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        best_step = torch.where(better, step.squeeze(1), best_step)
    return best_step


def _use_kernel(x: Tensor, step: Tensor):
    """The fused CPU kernel, where it applies (float32 CPU tensors) and could be built."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or step.dtype != torch.float32:
        return None
    return cpu_kernel()


def _layout(x: Tensor) -> torch.memory_format:
    """Channels last when ``x`` is stored so (a conv net's activations): no copy to NCHW."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class _LSQFunction(torch.autograd.Function):
    """Fake quantization with both LSQ gradients computed in one backward pass.

    On CPU a fused kernel does each direction in one pass over memory and saves only the input;
    elsewhere the same formulas run as torch ops.
    """

    @staticmethod
    def forward(ctx, x: Tensor, step: Tensor, qmin: int, qmax: int, grad_scale: float) -> Tensor:
        ctx.qrange, ctx.grad_scale, ctx.step_shape = (qmin, qmax), grad_scale, step.shape
        kernel = _use_kernel(x, step)
        ctx.kernel = kernel
        if kernel is not None:
            ctx.layout = _layout(x)
            x, flat_step = x.contiguous(memory_format=ctx.layout), step.reshape(-1).contiguous()
            ctx.save_for_backward(x, flat_step)
            return kernel.forward(x, flat_step, qmin, qmax)
        v = x * step.reciprocal()
        r = torch.round(v)
        q = r.clamp(qmin, qmax)
        ctx.save_for_backward(v, r, step)
        return q * step

    @staticmethod
    def backward(ctx, grad: Tensor):
        qmin, qmax = ctx.qrange
        if ctx.kernel is not None:
            x, flat_step = ctx.saved_tensors
            grad_x, grad_step = ctx.kernel.backward(grad.contiguous(memory_format=ctx.layout), x,
                                                    flat_step, qmin, qmax, ctx.grad_scale)
            return grad_x, grad_step.reshape(ctx.step_shape), None, None, None
        v, r, step = ctx.saved_tensors
        inside = (r >= qmin) & (r <= qmax)
        # inside the range the step gradient is round(v) - v; where clipped, the clip level.
        coef = torch.where(inside, r - v, r.clamp(qmin, qmax))
        grad_x = grad * inside
        weighted = grad * coef
        if step.numel() == 1:
            grad_step = weighted.sum()
        else:  # per channel: the step broadcasts along dim 0
            grad_step = weighted.sum(dim=tuple(range(1, grad.dim())))
        return grad_x, (grad_step * ctx.grad_scale).reshape(step.shape), None, None, None


def lsq_fake_quant(x: Tensor, step: Tensor, qmin: int, qmax: int, grad_scale: float) -> Tensor:
    """LSQ fake quantization of ``x``; ``step`` broadcasts against ``x`` (per tensor or channel)."""
    return _LSQFunction.apply(x, step, qmin, qmax, grad_scale)


class LSQQuantizer(nn.Module):
    """A learned-step-size fake quantizer for weights (per channel) or activations (per tensor).

    The step size is initialised from the first batch it sees, ``s = 2 * mean(|v|) / sqrt(Qp)``
    (per output channel when ``per_channel``). ``signed=None`` decides the sign from that batch:
    a non-negative input (after a ReLU) gets the unsigned range ``[0, 2^b - 1]``.

    The mode flags ``initialized`` and ``signed`` are buffers, so they travel with the state dict.

    Example::

        wq = LSQQuantizer(4, signed=True, per_channel=True, channels=64)
        w_hat = wq(conv.weight)        # at most 16 levels per output channel
    """

    initialized: Tensor
    signed: Tensor

    def __init__(self, bits: int, *, signed: bool | None = True, per_channel: bool = False,
                 channels: int = 1):
        super().__init__()
        if isinstance(bits, bool) or bits not in QUANT_BITS:
            raise ValueError(f"LSQ bits must be one of {list(QUANT_BITS)}, but got {bits!r}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, but got {channels}")
        self.bits = int(bits)
        self.per_channel = bool(per_channel)
        self.auto_sign = signed is None
        self.step = nn.Parameter(torch.ones(channels if per_channel else 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("signed", torch.tensor(True if signed is None else bool(signed)))
        # Python mirror of the buffers, read once, so a forward never syncs with a GPU.
        self._ready = False
        self._range = quant_range(self.bits, bool(signed) if signed is not None else True)

    @property
    def qmin(self) -> int:
        self._sync_flags()
        return self._range[0]

    @property
    def qmax(self) -> int:
        self._sync_flags()
        return self._range[1]

    def is_initialized(self) -> bool:
        """Whether the step size has been set (from a first batch or a loaded state dict)."""
        self._sync_flags()
        return self._ready

    def _sync_flags(self) -> None:
        if not self._ready and bool(self.initialized):
            self._range = quant_range(self.bits, bool(self.signed))
            self._ready = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = False

    def _step_view(self, x: Tensor) -> Tensor:
        step = self.step.clamp_min(_MIN_STEP)
        if self.per_channel:
            return step.view(-1, *([1] * (x.dim() - 1)))
        return step

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set the sign (if automatic) and the step size from ``x`` (LSQ's initialisation)."""
        if self.auto_sign:
            self.signed.fill_(bool((x < 0).any()))
        qmin, qmax = quant_range(self.bits, bool(self.signed))
        if self.per_channel:
            mean_abs = x.detach().abs().flatten(1).mean(dim=1)
        else:
            mean_abs = x.detach().abs().mean().reshape(1)
        # .data keeps the Parameter object, so an optimizer built before this call still holds it.
        self.step.data = (2 * mean_abs / math.sqrt(qmax)).clamp_min(_MIN_STEP).to(self.step.dtype)
        self.initialized.fill_(True)
        self._range, self._ready = (qmin, qmax), True

    @torch.no_grad()
    def initialize_mse(self, x: Tensor, candidates: int = 100) -> None:
        """Set the step that minimises the quantization error of ``x`` (per channel when
        ``per_channel``), searched over ``candidates`` fractions of the max-abs step.

        Without training, LSQ's initial step is a poor estimate of the step training reaches,
        and can make fewer bits look better than more; the error-minimising step does not.
        """
        self.initialize(x)
        qmin, qmax = self._range
        values = x.detach().flatten(1) if self.per_channel else x.detach().reshape(1, -1)
        self.set_step(mse_step(values.float(), qmin, qmax, candidates=candidates))

    @torch.no_grad()
    def set_step(self, step: Tensor) -> None:
        """Set the step size(s) (marks the quantizer initialised, keeps the Parameter object)."""
        self.step.data = step.reshape(self.step.shape).clamp_min(_MIN_STEP).to(self.step)
        self.initialized.fill_(True)
        self._ready = False  # the sign may have changed with the step: re-read the flags

    def grad_scale(self, x: Tensor) -> float:
        """LSQ's step-gradient scale ``1 / sqrt(N * Qp)``, N = elements covered by one step."""
        per_step = x.numel() // self.step.numel() if self.per_channel else x.numel()
        return 1.0 / math.sqrt(per_step * self.qmax)

    def integers(self, x: Tensor) -> Tensor:
        """The integer levels ``clamp(round(x / s), -Qn, Qp)`` (no gradient)."""
        with torch.no_grad():
            return torch.round(x * self._step_view(x).reciprocal()).clamp(self.qmin, self.qmax)

    def forward(self, x: Tensor) -> Tensor:
        if not self.is_initialized():
            self.initialize(x)
        qmin, qmax = self._range
        return lsq_fake_quant(x, self._step_view(x), qmin, qmax, self.grad_scale(x))

    def extra_repr(self) -> str:
        if not bool(self.initialized):
            return f"bits={self.bits}, per_channel={self.per_channel}, step=uninitialized"
        step = self.step.detach()
        shown = f"{step.item():.4g}" if step.numel() == 1 else f"mean {step.mean().item():.4g}"
        sign = "signed" if bool(self.signed) else "unsigned"
        return f"bits={self.bits}, {sign}, per_channel={self.per_channel}, step={shown}"
