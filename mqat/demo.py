"""Library demo: MQAT on a small modular CNN and scikit-learn's bundled digits (no download).

    python -m mqat.demo [--epochs 12] [--target 8] [--seed 0]

Trains a full-precision backbone / FPN / head network, measures each module's sensitivity,
lets the ILP pick per-module bits for the target compression, then runs the gradated flow
(FPN, head, backbone) with EMA and QC, printing accuracy and compression per stage. This demo
(not the library) needs scikit-learn for its data.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F

import mqat

MODULES = {"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]}
ORDER = ["fpn", "head", "backbone"]


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class DigitNet(nn.Module):
    """A backbone with two scales, an FPN that fuses them, a head that classifies."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.backbone = nn.ModuleDict({
            "stem": _block(1, width, 1),
            "c2": _block(width, width, 2),          # 8x8 -> 4x4... input is 16x16 -> 8x8
            "c3": _block(width, 2 * width, 2),      # 8x8 -> 4x4
        })
        self.fpn = nn.ModuleDict({
            "lat2": nn.Conv2d(width, width, 1),
            "lat3": nn.Conv2d(2 * width, width, 1),
            "smooth": _block(width, width, 1),
        })
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.backbone["c2"](self.backbone["stem"](x))
        c3 = self.backbone["c3"](c2)
        top = F.interpolate(self.fpn["lat3"](c3), size=c2.shape[-2:], mode="nearest")
        return self.head(self.fpn["smooth"](self.fpn["lat2"](c2) + top))


def load_digits(seed: int):
    """Digits as 1x16x16 tensors in [-1, 1]: 80% training, 20% validation."""
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def make_task(train, val, *, batch_size: int = 64, seed: int = 0):
    """The three callables the library needs: train_epoch, evaluate and a loss for sensitivity."""
    generator = torch.Generator().manual_seed(seed)
    val_batches = list(zip(val[0].split(256), val[1].split(256)))

    def train_epoch(model, optimizer, on_step):
        total, count = 0.0, 0
        for idx in torch.randperm(len(train[1]), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(train[0][idx]), train[1][idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            on_step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        return total / count

    @torch.no_grad()
    def evaluate(model):
        model.eval()
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val_batches)
        return {"accuracy": correct / len(val[1])}

    def loss_fn(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    return train_epoch, evaluate, loss_fn, val_batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mqat.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=12, help="full-precision epochs (12)")
    parser.add_argument("--stage-epochs", type=int, default=2, help="QAT epochs per stage (2)")
    parser.add_argument("--target", type=float, default=8.0, help="target compression (8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    train, val = load_digits(args.seed)
    train_epoch, evaluate, loss_fn, val_batches = make_task(train, val, seed=args.seed)
    model = DigitNet()
    module_map = mqat.ModuleMap(MODULES)
    fp_plan = mqat.BitPlan({m: 32 for m in MODULES}, act_bits=32)

    print(f"digits: {len(train[1])} training and {len(val[1])} validation images")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(args.epochs):
        model.train()
        train_epoch(model, optimizer, lambda: None)
    fp_accuracy = evaluate(model)["accuracy"]
    sizes = mqat.model_size(model, fp_plan, module_map)
    print(f"full precision: accuracy {fp_accuracy:.3f}, {sizes.packed_bytes:,} bytes")

    table = mqat.sensitivity(model, module_map, loss_fn=loss_fn, batches=val_batches)
    print(table)
    counts = {m: s.weights for m, s in sizes.modules.items()}
    plan = mqat.solve_bit_plan(table, counts, target_compression=args.target, act_bits=8)
    print(f"ILP plan for {args.target:g}x: {plan.to_dict()['weight_bits']}, activations 8 bits")

    print(f"{'stage':<10} {'accuracy':>8} {'ema':>6} {'compression':>11} {'bytes':>8} {'osc':>6}")

    def show(r: mqat.StageResult) -> None:
        ema = f"{r.ema_accuracy:.3f}" if r.ema_accuracy is not None else "-"
        print(f"{r.name:<10} {r.accuracy:8.3f} {ema:>6} {r.compression:10.2f}x "
              f"{r.model_bytes:8,} {r.oscillating_fraction:6.3f}")

    result = mqat.run_mqat(
        model, plan, module_map, order=ORDER, train_epoch=train_epoch, evaluate=evaluate,
        epochs_per_stage=args.stage_epochs,
        optimizer=lambda params: torch.optim.Adam(params, lr=5e-4),
        ema=mqat.EMAConfig(decay=0.99, warmup_steps=20), qc=mqat.QCConfig(lr=1e-3),
        on_stage=show)
    final = result.final
    print(f"final model (EMA + QC): accuracy {final['accuracy']:.3f} "
          f"(raw {final['accuracy_raw']:.3f}, EMA {final['accuracy_ema']:.3f}) vs FP "
          f"{fp_accuracy:.3f}, compression {result.stages[-1].compression:.2f}x, "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
