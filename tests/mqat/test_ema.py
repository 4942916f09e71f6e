import math

import pytest
import torch
from torch import nn

import mqat


def test_equals_hand_computed_average_over_steps():
    model = nn.Linear(3, 2)
    ema = mqat.ModelEMA(model, decay=0.9, warmup_steps=2)
    expected = None
    for step in range(5):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.update(model)
        a = 0.9 * (1 - math.exp(-step / 2))
        w = model.weight.detach().clone()
        expected = w if expected is None else a * expected + (1 - a) * w
    assert step == 4 and ema.decay_at(0) == 0.0
    assert torch.allclose(ema.module.weight, expected, atol=1e-6)


def test_integer_buffers_are_copied_and_bn_stats_averaged():
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    ema = mqat.ModelEMA(model, decay=0.5, warmup_steps=0)
    model.train()
    model(torch.randn(4, 2, 3, 3))
    ema.update(model)
    assert int(ema.module[1].num_batches_tracked) == 1
    mean_model = model[1].running_mean.clone()
    assert torch.allclose(ema.module[1].running_mean, 0.5 * mean_model)  # average with initial 0


def test_step_sizes_are_averaged_and_new_quantizers_copied_after_refresh(net, module_map, batch):
    plan = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 8})
    ema = mqat.ModelEMA(net, decay=0.5, warmup_steps=0)
    mqat.quantize_(net, plan, module_map, modules=["fpn"])
    ema.refresh(net)
    net(batch)  # initialises the new steps
    ema.update(net)
    # the new step is copied at its first update, not averaged with its placeholder
    assert torch.equal(ema.module.fpn[0].weight_quant.step, net.fpn[0].weight_quant.step.detach())
    assert bool(ema.module.fpn[0].weight_quant.initialized)
    with torch.no_grad():
        net.fpn[0].weight_quant.step.mul_(3)
    old = ema.module.fpn[0].weight_quant.step.clone()
    ema.update(net)
    assert torch.allclose(ema.module.fpn[0].weight_quant.step,
                          0.5 * old + 0.5 * net.fpn[0].weight_quant.step.detach())
    out = ema.module(batch)
    assert torch.isfinite(out).all()
    assert not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        mqat.EMAConfig(decay=decay)
