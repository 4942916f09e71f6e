import math

import pytest
import torch

import mqat


def _reference(x, step, qmin, qmax, g, per_channel):
    zero = torch.zeros(step.numel(), dtype=torch.float32)
    if per_channel:
        return torch._fake_quantize_learnable_per_channel_affine(x, step, zero, 0, qmin, qmax, g)
    return torch._fake_quantize_learnable_per_tensor_affine(x, step, zero, qmin, qmax, g)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("signed", [True, False])
def test_forward_and_gradients_equal_torch_fused_op(bits, per_channel, signed):
    x = torch.randn(16, 8, 3, 3) * 0.5
    if not signed:
        x = x.abs()
    quant = mqat.LSQQuantizer(bits, signed=signed, per_channel=per_channel, channels=16)
    quant.initialize(x)
    g = quant.grad_scale(x)
    qmin, qmax = mqat.quant_range(bits, signed)

    x1 = x.clone().requires_grad_(True)
    out = quant(x1)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)

    x2 = x.clone().requires_grad_(True)
    step2 = quant.step.detach().clone().requires_grad_(True)
    ref = _reference(x2, step2, qmin, qmax, g, per_channel)
    ref.backward(grad_out)

    assert torch.equal(out, ref)  # same x * (1/s) arithmetic: bit for bit
    assert torch.allclose(x1.grad, x2.grad)
    assert torch.allclose(quant.step.grad, step2.grad, rtol=1e-4, atol=1e-6)


def test_grad_scale_is_lsq_formula():
    x = torch.randn(4, 5, 3, 3)
    per_tensor = mqat.LSQQuantizer(4, signed=True)
    per_channel = mqat.LSQQuantizer(4, signed=True, per_channel=True, channels=4)
    assert per_tensor.grad_scale(x) == pytest.approx(1 / math.sqrt(x.numel() * 7))
    assert per_channel.grad_scale(x) == pytest.approx(1 / math.sqrt(45 * 7))


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_at_most_two_to_the_bits_levels_per_channel(bits):
    w = torch.randn(6, 4, 3, 3) * 3
    quant = mqat.LSQQuantizer(bits, signed=True, per_channel=True, channels=6)
    out = quant(w)
    for channel in out:
        assert channel.unique().numel() <= 2**bits
    assert out.unique().numel() > 2**bits  # the steps differ between channels


def test_init_from_first_batch_per_channel_and_per_tensor():
    w = torch.randn(3, 10)
    quant = mqat.LSQQuantizer(4, signed=True, per_channel=True, channels=3)
    quant(w)
    expected = 2 * w.abs().mean(dim=1) / math.sqrt(7)
    assert torch.allclose(quant.step.detach(), expected)
    act = mqat.LSQQuantizer(8, signed=None)
    relu_out = torch.relu(torch.randn(100))
    act(relu_out)
    assert not bool(act.signed)  # non-negative first batch: unsigned range
    assert (act.qmin, act.qmax) == (0, 255)
    step_before = act.step.detach().clone()
    act(torch.randn(100) * 10)  # later batches do not re-initialise
    assert torch.equal(act.step.detach(), step_before)


def test_step_parameter_identity_survives_lazy_init():
    quant = mqat.LSQQuantizer(4, signed=True, per_channel=True)
    param = quant.step
    optimizer = torch.optim.SGD(quant.parameters(), lr=0.1)
    out = quant(torch.randn(5, 7))
    assert quant.step is param and quant.step.shape == (5,)
    out.sum().backward()
    optimizer.step()  # the optimizer built before init still updates the step


def test_flags_are_buffers_and_survive_state_dict_round_trip():
    quant = mqat.LSQQuantizer(3, signed=None)
    quant(torch.rand(10))
    state = quant.state_dict()
    assert {"step", "initialized", "signed"} <= set(state)
    fresh = mqat.LSQQuantizer(3, signed=None)
    fresh.load_state_dict(state)
    x = torch.rand(10)
    assert torch.equal(fresh(x), quant(x))
    assert (fresh.qmin, fresh.qmax) == (0, 7)


def test_extra_repr_shows_bits_and_step():
    quant = mqat.LSQQuantizer(4, signed=True)
    assert "bits=4" in repr(quant) and "uninitialized" in repr(quant)
    quant(torch.randn(10))
    text = repr(quant)
    assert "bits=4" in text and f"{quant.step.item():.4g}" in text


@pytest.mark.parametrize("bad", [1, 9, "four", 32, True])
def test_bad_bits_name_the_value(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("'", "")):
        mqat.LSQQuantizer(bad, signed=True)


def test_quant_layers_quantize_weight_per_channel_and_input_per_tensor(net, batch):
    conv = net.backbone[3]
    quant = mqat.QuantConv2d.from_float(conv, weight_bits=2, act_bits=4)
    assert quant.weight is conv.weight  # latent weights keep their identity
    out = quant(torch.relu(torch.randn(2, 8, 8, 8)))
    assert out.shape == (2, 16, 4, 4)
    assert quant.weight_quant.step.shape == (16,)
    assert quant.act_quant.step.shape == (1,) and not bool(quant.act_quant.signed)
    lin = mqat.QuantLinear.from_float(net.head[1], weight_bits=8, act_bits=32)
    assert lin.act_quant is None and lin(torch.randn(3, 256)).shape == (3, 10)


def _run(x, step, qmin, qmax, g, grad_out):
    x = x.clone().requires_grad_(True)
    step = step.clone().requires_grad_(True)
    out = mqat._lsq.lsq_fake_quant(x, step, qmin, qmax, g)
    out.backward(grad_out)
    return out, x.grad, step.grad


@pytest.mark.parametrize("layout", ["strided", "channels_last"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_cpu_kernel_equals_the_torch_ops(monkeypatch, per_channel, layout):
    """Ties (half-integers), values far outside the range, several chunks, a strided input and
    a channels-last one (kept channels last: no copy)."""
    from mqat._lsq_kernel import cpu_kernel
    assert cpu_kernel() is not None, "the C++ kernel did not build"
    base = torch.randn(64, 40, 9, 9) * 3
    base[0, 0, 0, :6] = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 1e9])   # in units of the step
    x = base.transpose(2, 3) if layout == "strided" else base.contiguous(memory_format=torch.channels_last)
    step = torch.rand(64).add_(0.5).index_fill_(0, torch.tensor([0]), 1.0).view(-1, 1, 1, 1) \
        if per_channel else torch.tensor([1.0])
    qmin, qmax = mqat.quant_range(4, True)
    grad_out = torch.randn_like(x)
    fused = _run(x, step, qmin, qmax, 0.01, grad_out)
    monkeypatch.setattr(mqat._lsq, "_use_kernel", lambda *_: None)
    plain = _run(x, step, qmin, qmax, 0.01, grad_out)
    assert torch.equal(fused[0], plain[0]) and torch.equal(fused[1], plain[1])
    if layout == "channels_last":
        assert fused[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fused[2], plain[2], rtol=1e-5, atol=1e-6)
    ties = fused[0][0, 0, :6, 0] if layout == "strided" else fused[0][0, 0, 0, :6]
    assert ties.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, 7.0]  # half to even


def test_mse_step_beats_lsq_init_and_error_falls_with_bits():
    w = torch.randn(32, 16, 3, 3) * torch.rand(32, 1, 1, 1)   # channels of different scales
    errors = []
    for bits in (2, 3, 4, 6, 8):
        lsq = mqat.LSQQuantizer(bits, per_channel=True, channels=32)
        lsq.initialize(w)
        mse = mqat.LSQQuantizer(bits, per_channel=True, channels=32)
        mse.initialize_mse(w)
        lsq_error, mse_error = ((q(w) - w).pow(2).sum().item() for q in (lsq, mse))
        assert mse_error <= lsq_error and mse.is_initialized()
        errors.append(mse_error)
    assert errors == sorted(errors, reverse=True)              # more bits, less error
