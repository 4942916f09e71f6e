"""The Ray Tune function trainable: one MQAT run for one point of the search space.

It only wires library calls to ``ray.tune.report``: build the task, load the shared FP
weights, run :func:`mqat.run_mqat` with the trial's settings, report after every stage with a
checkpoint (so a retried trial resumes after its last finished stage), and report the final
model last: exported with its integer weights packed, and as ONNX with its latency measured. A trial restarted after its final
checkpoint (the driver died before it recorded the end) returns at once: nothing runs twice.
"""
from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import mqat
from spaces import TrialSettings, trial_settings
from tracking.artifacts import FLOW_STATE_FILE as STATE_FILE
from tracking.artifacts import MODEL_FILE, ONNX_FILE

from .deploy import DeploySettings, export_and_time
from .faults import fault_for, with_fault
from .tasks import Task, example_input, get_task


@dataclass(frozen=True)
class StageSettings:
    """What each MQAT stage of a trial trains and scores on (``search.stage``)."""

    images_per_epoch: int | None = 512  # QAT fine-tuning images per stage (null: the whole training set)
    eval_images: int | None = 500  # validation images scoring each stage (null: all); the final model uses all
    calibration_batches: int = 8  # training batches that set each stage's new quantizer steps
    bn_batches: int = 8  # training batches that re-estimate BN statistics (trials with bn on)
    #: the layers that read one tensor share one input quantizer (one step, which a runtime can
    #: fuse into the layer that made the tensor): faster deployed, its accuracy within noise of
    #: separate quantizers (python -m bench --only fidelity-shared, 3 seeds)
    share_inputs: bool = True

    def __post_init__(self) -> None:
        for name in ("calibration_batches", "bn_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.stage.{name} must be at least 1, but got {getattr(self, name)}")
        for name in ("images_per_epoch", "eval_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"search.stage.{name} must be at least 1 (or null for all), but got {value}")


@dataclass(frozen=True)
class TrialSetup:
    """What every trial shares; shipped once through the object store (``tune.with_parameters``)."""

    task_name: str
    task_config: Any
    cache_dir: str
    fp_state: dict[str, torch.Tensor]
    stage: StageSettings = field(default_factory=StageSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)  # the ONNX export and its latency
    ema_warmup_fraction: float = 0.05  # of the steps a trial runs: the searched decay then matters
    faults: dict[int, str] | None = None  # trial number -> fault kind (``trainables.faults``)
    #: the task's module map split into the space's units (``space.granularity``), as a dict; None: the task's own
    module_map: dict | None = None

    def units_map(self, task: Task) -> mqat.ModuleMap:
        """The module map a trial's plan gives bits to."""
        return mqat.ModuleMap.from_dict(self.module_map) if self.module_map else task.module_map


def ema_warmup_steps(task: Task, setup: TrialSetup, epochs: int) -> int:
    """The EMA warm-up in steps, a fixed fraction of the ``epochs`` a trial trains."""
    return max(1, round(setup.ema_warmup_fraction * epochs * task.steps_per_epoch(setup.stage.images_per_epoch)))


def _threads_and_device() -> torch.device:
    """Torch threads follow the trial's CPU share; CUDA only when the trial was given a GPU."""
    import ray
    from ray import tune

    resources = tune.get_context().get_trial_resources().required_resources
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    if resources.get("GPU", 0) > 0 and torch.cuda.is_available() and ray.get_gpu_ids():
        return torch.device("cuda")
    return torch.device("cpu")


def _load_state() -> mqat.FlowState | str | None:
    """The flow state of the last finished stage, ``"final"`` after the final report, or None."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        if (Path(directory) / MODEL_FILE).is_file():
            return "final"
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return None
        return mqat.FlowState(**torch.load(path, map_location="cpu", weights_only=True))


def _report(metrics: dict[str, Any], files: dict[str, Any] | None = None) -> None:
    """Report to Tune (with the node that ran it), and a checkpoint directory holding ``files``
    (name -> writer)."""
    import ray
    from ray import tune

    metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}

    if not files:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        for name, write in files.items():
            write(Path(directory) / name)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


@functools.lru_cache(maxsize=1)
def _task(task_name: str, task_config: Any, cache_dir: str, device: str):
    """The task, kept by the worker process: with ``reuse_actors`` the next trial skips loading
    the data set again."""
    return get_task(task_name)(task_config, cache_dir=cache_dir, device=device, progress=False)


def _fp_model(task: Task, fp_state):
    model = task.build_model()
    model.load_state_dict(fp_state)
    return model


def _weights_key(state: dict[str, torch.Tensor]) -> str:
    """The FP weights' identity (a few ms for a few MB): what a cached FP latency was timed on."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_flow(task: Task, stage: StageSettings, settings: TrialSettings, model: torch.nn.Module, *,
             train_epoch: Callable[..., float] | None = None, on_stage=None,
             resume: mqat.FlowState | None = None, module_map: mqat.ModuleMap | None = None) -> mqat.MQATResult:
    """What one trial computes: :func:`mqat.run_mqat` on the task's data with the trial's settings.

    Everything fitted reads training images only: each stage's calibration of its new quantizers,
    the BN re-estimation, QC and EMA (through ``train_epoch``, by default ``stage.images_per_epoch``
    random training images). Validation images only score (each stage on ``stage.eval_images``,
    the final model on all), so what ranks the trials never also fits them; test images are not
    read here at all. ``module_map``: the task's, or its groups (a plan with bits per group).
    """
    train_epoch = train_epoch or functools.partial(task.train_epoch, images=stage.images_per_epoch)
    calibration = task.train_batches(stage.calibration_batches)
    first = calibration[0][0] if isinstance(calibration[0], (tuple, list)) else calibration[0]
    shared = mqat.input_groups(model, first[:1]) if stage.share_inputs else None
    return mqat.run_mqat(
        model, settings.plan, module_map or task.module_map, order=settings.order, train_epoch=train_epoch,
        evaluate=task.evaluate, evaluate_stage=functools.partial(task.evaluate, images=stage.eval_images),
        epochs_per_stage=settings.epochs_per_stage, ema=settings.ema, qc=settings.qc,
        calibration_batches=calibration,
        bn_batches=task.train_batches(stage.bn_batches) if settings.bn else None,
        seed=settings.seed, optimizer=lambda params: torch.optim.Adam(params, lr=settings.lr),
        on_stage=on_stage, resume=resume, shared_inputs=shared)


def train_mqat(config: dict[str, Any], setup: TrialSetup) -> None:
    """Run MQAT for one trial configuration and report every stage to Tune."""
    from ray import tune

    # workers' output reaches the driver: leave out Ray's line per saved checkpoint
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    resume = _load_state()
    if resume == "final":
        return
    device = _threads_and_device()
    task = _task(setup.task_name, setup.task_config, setup.cache_dir, str(device))
    module_map = setup.units_map(task)
    epochs = len(module_map.names) * int(config["epochs_per_stage"])
    settings = trial_settings(config, module_map.units, ema_warmup_steps=ema_warmup_steps(task, setup, epochs))
    model = _fp_model(task, setup.fp_state)
    # known before training: the plan's compression and BOPs go with every stage's report (MLflow
    # shows what the trial will give beside its accuracy so far); the BOPs are the final report's too
    planned = mqat.model_size(model, settings.plan, module_map, example_input=example_input(task).cpu())
    plan_compression, plan_bops = planned.compression, planned.bops
    context = tune.get_context()
    fault = fault_for(setup.faults or {}, Path(context.get_trial_dir()).name, context.get_trial_id())
    train_epoch = with_fault(functools.partial(task.train_epoch, images=setup.stage.images_per_epoch), fault,
                             resumed=resume is not None, checkpointed=lambda: tune.get_checkpoint() is not None)

    def on_stage(result: mqat.StageResult) -> None:
        """Every stage is reported; a training stage with its state, so a retry resumes after it."""
        state = result.state
        files = {STATE_FILE: lambda path: torch.save(vars(state), path)} if state is not None else None
        _report({**result.to_dict(), "plan_compression": plan_compression, "plan_bops": plan_bops,
                 "final": False}, files)

    start = time.perf_counter()
    result = run_flow(task, setup.stage, settings, model, train_epoch=train_epoch, on_stage=on_stage, resume=resume,
                      module_map=module_map)
    size = mqat.model_size(result.model, settings.plan, module_map)
    final = {**{f"metric/{k}": v for k, v in result.metrics.items()}, **result.final,
             "stage": len(result.stages), "stage_name": "final", "compression": size.compression,
             "model_bytes": size.packed_bytes, "bops": plan_bops, "oscillating_fraction": result.stages[-1].oscillating_fraction,
             "time_mqat_s": time.perf_counter() - start, "seed": settings.seed, "final": True}
    plan = settings.plan
    files = {MODEL_FILE: lambda path: mqat.export_packed(result.model, plan, module_map, path)}
    with tempfile.TemporaryDirectory() as directory:
        if setup.deploy.onnx:
            final.update(export_and_time(result.model, task, Path(directory), setup.deploy, device.type,
                                         fp_model=functools.partial(_fp_model, task, setup.fp_state),
                                         fp_key=_weights_key(setup.fp_state)))
            files[ONNX_FILE] = lambda path: shutil.copyfile(Path(directory) / ONNX_FILE, path)
        _report(final, files)
