import torch

import mqat
from mqat._qc import clamp_qc, frozen


def _quantized(net, module_map, batch):
    mqat.quantize_(net, mqat.BitPlan({"backbone": 4, "fpn": 3, "head": 8}), module_map)
    net.train()
    net(batch)
    return net.eval()


def test_fold_leaves_outputs_unchanged(net, module_map, batch):
    _quantized(net, module_map, batch)
    params = mqat.add_qc(net)
    assert len(params) == 2 * len(mqat.quantized_layers(net))
    with torch.no_grad():
        for p in params:
            p.add_(torch.rand_like(p) * 0.2)  # a trained-looking correction, gamma > 0
    with torch.no_grad():
        before = net(batch)
        integers_before = [l.weight_quant.integers(l.weight) for _, l in mqat.quantized_layers(net)]
    mqat.fold_qc(net)
    with torch.no_grad():
        after = net(batch)
        integers_after = [l.weight_quant.integers(l.weight) for _, l in mqat.quantized_layers(net)]
    assert all(l.qc_gamma is None for _, l in mqat.quantized_layers(net))
    assert torch.allclose(before, after, rtol=1e-5, atol=1e-5)
    # folding rescales the steps; the integer weights stay as they were
    assert all(torch.equal(a, b) for a, b in zip(integers_before, integers_after))


def test_fresh_correction_is_identity(net, module_map, batch):
    _quantized(net, module_map, batch)
    with torch.no_grad():
        before = net(batch)
        mqat.add_qc(net)
        assert torch.equal(net(batch), before)


def test_frozen_keeps_bn_fixed_even_if_train_is_called(net, module_map, batch):
    _quantized(net, module_map, batch)
    params = mqat.add_qc(net)
    bn = net.backbone[1]
    stats = bn.running_mean.clone()
    with frozen(net, params):
        net.train()  # what a task's training loop may do
        assert not bn.training
        net(batch * 5 + 3)
        assert all(not p.requires_grad for n, p in net.named_parameters() if "qc_" not in n)
    assert torch.equal(bn.running_mean, stats)
    assert all(p.requires_grad for p in net.parameters())
    net.train()
    assert bn.training  # nn.Module.train works again outside


def test_gamma_is_kept_positive(net, module_map, batch):
    _quantized(net, module_map, batch)
    params = mqat.add_qc(net)
    with torch.no_grad():
        params[0].fill_(-1.0)
    clamp_qc(net)
    assert (params[0] > 0).all()
