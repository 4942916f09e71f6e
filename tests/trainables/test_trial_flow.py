"""What a trial's flow builds by default: one input quantizer per tensor that several layers
read (``search.stage.share_inputs``), so that the runtime can fuse it into the tensor's producer."""
from __future__ import annotations

import mqat
from spaces import trial_settings
from trainables.trainable import StageSettings, run_flow

# the pose backbone's first stage output: read by the next block's conv and shortcut and an FPN lateral
READERS = ("backbone.stages.1.0.conv1.0", "backbone.stages.1.0.shortcut.0", "fpn.lateral.0")


def _flow(tiny_task, stage: StageSettings):
    point = {"order": "backbone>fpn>head", "bits_backbone": 4, "bits_fpn": 4, "bits_head": 4, "act_bits": 8,
             "ema": False, "qc": False, "bn": False, "lr": 1e-3, "epochs_per_stage": 1, "seed": 0}
    settings = trial_settings(point, tiny_task.module_map.names)
    return run_flow(tiny_task, stage, settings, tiny_task.build_model())


def test_a_trial_shares_the_input_quantizer_of_a_tensor_its_layers_read_by_default(tiny_task):
    small = {"images_per_epoch": 16, "eval_images": 16, "calibration_batches": 1, "bn_batches": 1}
    layers = dict(mqat.quantized_layers(_flow(tiny_task, StageSettings(**small)).model))
    assert len({id(layers[n].act_quant) for n in READERS}) == 1
    layers = dict(mqat.quantized_layers(_flow(tiny_task, StageSettings(**small, share_inputs=False)).model))
    assert len({id(layers[n].act_quant) for n in READERS}) == 3  # the switch still gives each its own
