"""Does the pose metric react to quantization? FP against 8-bit and 2-bit weights, no training.

    python bench/metric_reaction.py --config configs/quickstart.yaml

Uses the config's (cached) FP checkpoint; quantizes every module's weights with LSQ's
initial steps, activations left at full precision, and scores each on the validation set.
"""
from __future__ import annotations

import argparse
import copy

import mqat
from search.config import load_config
from trainables.pretrain import load_model, pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    args = parser.parse_args()
    config = load_config(args.config)
    task = config.task_instance(progress=False)
    fp = pretrain(task, config.pretrain, cache_dir=config.cache_dir)
    model = load_model(task, fp.checkpoint)
    rows = [("FP", model, None)]
    for bits in (8, 4, 2):
        plan = mqat.BitPlan(dict.fromkeys(task.module_map.names, bits), act_bits=32)
        quantized = mqat.quantize_(copy.deepcopy(model), plan, task.module_map)
        rows.append((f"W{bits} (no training)", quantized, plan))
    print(f"{'model':<22} {'ADD-0.1d':>14} {'AUC':>6} {'kp px':>6} {'compression':>11}")
    for name, net, plan in rows:
        m = task.evaluate(net)
        cf = mqat.model_size(net, plan, task.module_map).compression if plan else 1.0
        print(f"{name:<22} {m['accuracy']:.3f} +- {m['add_01d_se']:.3f} {m['add_auc']:6.3f} "
              f"{m['kp_err_px']:6.2f} {cf:10.2f}x")


if __name__ == "__main__":
    main()
