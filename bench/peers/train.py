"""The training every arm's plan gets, identical across arms: the project's joint LSQ QAT with the
steps, images and learning rate of one full mqat trial (every module's stage budget in one joint
stage, as the uniform baseline trains), calibration and BN re-estimation on training images, then
the score on the test split, the packed size in the project's accounting, and the ONNX export
timed in the default runtime beside the FP model, as a trial's is."""
from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path


def epochs_per_stage(ctx) -> int:
    """A stage's epochs in the search's seed points: the space's, or its fewest where it searches them."""
    space = ctx.config.space
    return int(space.fewest_epochs if isinstance(space.epochs_per_stage, (list, tuple)) else space.epochs_per_stage)


def epochs(ctx) -> int:
    """A full trial's epochs: every module's stage, trained jointly (``run_mqat(order=None)``)."""
    return epochs_per_stage(ctx) * len(ctx.units_map.names)


def trained_images(ctx) -> int:
    """Training images one run reads in its optimizer steps (calibration and BN batches aside)."""
    images = ctx.config.search.stage.images_per_epoch
    batch = getattr(ctx.config.task, "batch_size", 64)  # BaseTask's default where a config names none
    read = ctx.task.steps_per_epoch(images) * batch  # the training split, when smaller
    return epochs(ctx) * (min(images, read) if images is not None else read)


def train(task_name: str, quick: bool, bits: dict[str, int], seed: int) -> dict:
    """One run of a per-layer plan (layer -> weight bits); its test score, compression and bytes."""
    import torch

    import mqat

    from .tasks import context

    torch.set_num_threads(1)  # two runs at a time on two cores
    ctx = context(task_name, quick)
    task, stage = ctx.task, ctx.config.search.stage
    model = task.build_model()
    model.load_state_dict(ctx.fp_state)
    plan = ctx.plan(bits)
    start = time.perf_counter()
    bn = ctx.config.space.bn is not False  # the seed points re-estimate BN wherever the space allows it
    result = mqat.run_mqat(
        model, plan, ctx.units_map, order=None, epochs_per_stage=epochs_per_stage(ctx),
        train_epoch=functools.partial(task.train_epoch, images=stage.images_per_epoch),
        evaluate=lambda m: {"accuracy": 0.0},  # scored below, on the test split
        calibration_batches=task.train_batches(stage.calibration_batches),
        bn_batches=task.train_batches(stage.bn_batches) if bn else None, seed=seed,
        optimizer=lambda params: torch.optim.Adam(params, lr=ctx.lr))
    train_s = time.perf_counter() - start
    scores = task.evaluate(result.model, split="test")
    size = mqat.model_size(result.model, plan, ctx.units_map)
    return {"accuracy": scores["accuracy"], "accuracy_se": scores.get("accuracy_se"),
            "compression": size.compression, "bytes": size.packed_bytes, "train_s": train_s,
            "trained_images": trained_images(ctx), **_timed(ctx, result.model)}


def _timed(ctx, model) -> dict:
    """The model's ONNX export (``speed`` layout) timed in the default runtime, the FP model's in
    the same runs: ``speedup_vs_fp`` at batch 1 and ``speedup_vs_fp_batch``, as a trial reports."""
    from trainables.deploy import DeploySettings, export_and_time

    def fp_model():
        fp = ctx.task.build_model()
        fp.load_state_dict(ctx.fp_state)
        return fp.eval()

    keys = ("latency_ms", "fp_latency_ms", "speedup_vs_fp", "speedup_vs_fp_batch", "latency_provider")
    with tempfile.TemporaryDirectory() as directory:
        metrics = export_and_time(model, ctx.task, Path(directory), DeploySettings(), fp_model=fp_model,
                                  fp_key=ctx.config.task_name)
    return {k: metrics[k] for k in keys}
