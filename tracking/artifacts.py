"""The names of the files a search leaves, each defined once: what a trial's checkpoint holds, and
what the driver keeps beside the search."""
from __future__ import annotations

MODEL_FILE = "model.mqat"          # a trial's final model, packed integers (mqat.export_packed)
ONNX_FILE = "model.onnx"           # the same model as ONNX, QDQ (mqat.export_onnx)
FLOW_STATE_FILE = "flow_state.pt"  # a trial's flow state after its last training stage
SCHEDULER_FILE = "scheduler.json"  # MOASHA's rungs (search.scheduler), read back by a resumed driver
