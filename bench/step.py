"""2. QAT step overhead: one training step (forward, backward, Adam) of the quickstart pose
network with every module quantized (4-bit weights per channel, 8-bit activations), against the
FP step and against torch.ao's eager QAT (``prepare_qat``, the same bits) on the same network."""
from __future__ import annotations

import copy

import torch
from torch import nn

import mqat
from mqat import _lsq
from trainables.pose.config import PoseConfig
from trainables.pose.keypoints import pose_loss
from trainables.pose.network import PoseNet
from trainables.pose.task import MODULE_MAP

from .timing import interleaved, row

SECTION = "qat step"


def _network(config: PoseConfig) -> nn.Module:
    return PoseNet(keypoints=config.keypoints, widths=config.widths, depth=config.depth,
                   fpn_channels=config.fpn_channels).to(memory_format=torch.channels_last)


def _step(model: nn.Module, batch) -> callable:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, kps = batch

    def run():
        loss = pose_loss(model(x), kps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return run


def _torch_ao(model: nn.Module) -> nn.Module:
    """torch.ao eager QAT with 4-bit per-channel weights and 8-bit activations."""
    from torch.ao import quantization as tq

    weight = tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-8,
                                       quant_max=7, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    model = copy.deepcopy(model).train()
    model.qconfig = tq.QConfig(activation=tq.default_fake_quant, weight=weight)
    return tq.prepare_qat(model)


def run(quick: bool = False) -> list[dict]:
    config = PoseConfig(image_size=128, widths=(16, 48, 128, 256), fpn_channels=32, batch_size=32)
    torch.manual_seed(0)
    x = torch.randn(config.batch_size, 3, config.image_size, config.image_size).contiguous(
        memory_format=torch.channels_last)
    kps = torch.rand(config.batch_size, config.keypoints, 2) * config.image_size
    fp = _network(config).train()
    plan = mqat.BitPlan(dict.fromkeys(MODULE_MAP, 4), act_bits=8)
    quantized = mqat.quantize_(copy.deepcopy(fp), plan, mqat.ModuleMap(MODULE_MAP))
    quantized(x)  # LSQ steps initialised from a first batch
    plain = copy.deepcopy(quantized)

    def plain_step():  # mqat's LSQ as torch ops (no fused kernel)
        kernel, _lsq._use_kernel = _lsq._use_kernel, lambda *_: None
        try:
            plain_run()
        finally:
            _lsq._use_kernel = kernel

    plain_run = _step(plain, (x, kps))
    times = interleaved({"fp": _step(fp, (x, kps)), "mqat": _step(quantized, (x, kps)),
                         "mqat_plain": plain_step, "torch.ao": _step(_torch_ao(fp), (x, kps))},
                        rounds=3 if quick else 10, warmup=1)
    base = times["fp"]
    return [row(SECTION, f"FP step, batch {config.batch_size} at {config.image_size} px", base,
                baseline="fp", ratio=1.0),
            row(SECTION, "mqat W4/A8 step (fused LSQ)", times["mqat"], baseline="fp",
                ratio=times["mqat"] / base, goal="<= 1.5x FP", met=times["mqat"] / base <= 1.5),
            row(SECTION, "mqat W4/A8 step, LSQ as torch ops", times["mqat_plain"], baseline="fp",
                ratio=times["mqat_plain"] / base),
            row(SECTION, "torch.ao prepare_qat W4/A8 step", times["torch.ao"], baseline="fp",
                ratio=times["torch.ao"] / base)]
