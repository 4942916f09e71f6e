import copy

import pytest
import torch

import mqat
from mqat._lsq import mse_step

PLAN8 = mqat.BitPlan({"backbone": 8, "fpn": 8, "head": 8}, act_bits=8)


def _output_error(model, reference, x):
    with torch.no_grad():
        model.eval()
        reference.eval()
        return (model(x) - reference(x)).pow(2).mean().item()


def test_calibrated_w8a8_stays_closer_to_fp_than_lsq_initialisation(net, module_map):
    batches = [torch.randn(16, 3, 8, 8) for _ in range(4)]
    lsq = mqat.quantize_(copy.deepcopy(net), PLAN8, module_map)
    lsq.eval()
    lsq(batches[0])  # LSQ's rule, from the first batch it sees
    calibrated = mqat.calibrate(mqat.quantize_(copy.deepcopy(net), PLAN8, module_map), batches)
    x = torch.randn(64, 3, 8, 8)
    assert _output_error(calibrated, net, x) < 0.2 * _output_error(lsq, net, x)


def test_activation_range_covers_every_batch_not_the_first(net, module_map):
    small, large = torch.randn(8, 3, 8, 8), 10 * torch.randn(8, 3, 8, 8)
    model = mqat.quantize_(copy.deepcopy(net), PLAN8, module_map, modules=["backbone"])
    mqat.calibrate(model, [small, large], activations="percentile", percentile=100.0)
    first = model.backbone[0].act_quant
    assert bool(first.signed)  # the raw input has negative values
    expected = max(small.abs().max(), large.abs().max()) / 128  # the wider side, -Qn
    assert first.step.item() == pytest.approx(expected.item(), rel=1e-5)
    after_relu = model.backbone[3].act_quant
    assert not bool(after_relu.signed) and after_relu.qmin == 0


def test_calibration_restores_mode_and_quantizers_and_limits_to_given_layers(net, module_map):
    model = mqat.quantize_(copy.deepcopy(net), PLAN8, module_map)
    model.train()
    names = [n for n, _ in mqat.quantized_layers(model)]
    mqat.calibrate(model, [torch.randn(4, 3, 8, 8)], layers=names[:1])
    assert model.training and model.backbone[1].training
    layers = dict(mqat.quantized_layers(model))
    assert layers[names[0]].act_quant.is_initialized() and layers[names[0]].weight_quant.is_initialized()
    assert not layers[names[1]].act_quant.is_initialized()
    assert all(layer.act_quant is not None for layer in layers.values())
    with pytest.raises(ValueError, match="not quantized layers"):
        mqat.calibrate(model, [torch.randn(4, 3, 8, 8)], layers=["nope"])


@pytest.mark.parametrize("kwargs, match", [({"weights": "max"}, "weights must be one of"),
                                           ({"activations": "kl"}, "activations must be one of"),
                                           ({"percentile": 0}, "percentile")])
def test_bad_calibration_rules(net, module_map, kwargs, match):
    model = mqat.quantize_(copy.deepcopy(net), PLAN8, module_map)
    with pytest.raises(ValueError, match=match):
        mqat.calibrate(model, [torch.randn(4, 3, 8, 8)], **kwargs)


def test_mse_step_has_less_error_than_its_neighbours_and_the_max_step():
    values = torch.randn(3, 2000)
    values[:, 0] = 12.0  # an outlier: the max-abs step wastes levels on it
    step = mse_step(values, -8, 7)

    def error(s):
        return ((values / s[:, None]).round().clamp(-8, 7) * s[:, None] - values).pow(2).sum(1)

    top = values.abs().amax(1) / 8
    assert (error(step) <= error(top)).all() and (step < top).all()
    assert (error(step) <= error(step * 1.05)).all() and (error(step) <= error(step * 0.95)).all()


def test_reestimate_bn_gives_the_statistics_of_all_batches(net):
    batches = [torch.randn(8, 3, 8, 8) * (i + 1) for i in range(3)]
    bn = net.backbone[1]
    net.eval()
    mqat.reestimate_bn(net, batches)
    with torch.no_grad():
        features = torch.cat([net.backbone[0](b) for b in batches])
    per_batch_mean = torch.stack([net.backbone[0](b).mean(dim=(0, 2, 3)) for b in batches]).detach()
    # cumulative average over batches (momentum None): the mean of the batch means
    assert torch.allclose(bn.running_mean, per_batch_mean.mean(0), atol=1e-5)
    assert not torch.allclose(bn.running_mean, features[-8:].mean(dim=(0, 2, 3)), atol=1e-3)
    assert bn.momentum == 0.1 and not net.training


def test_reestimate_bn_repairs_stale_statistics(net):
    x = torch.randn(32, 3, 8, 8)
    mqat.reestimate_bn(net, [x])  # statistics that match the weights
    net.eval()
    reference = net(x).detach()
    with torch.no_grad():
        net.backbone[0].weight.mul_(1.5)  # weights moved; BN statistics did not follow
    stale = (net(x) - reference).abs().mean().item()
    mqat.reestimate_bn(net, [x])
    repaired = (net(x) - reference).abs().mean().item()
    assert stale > 1e-2 and repaired < 1e-3 * stale  # BN undoes a scaled conv exactly
