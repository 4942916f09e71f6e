"""The names of the files a trial's checkpoint holds, each defined once (the driver's own files
beside the search: ``tracking.report.DRIVER_FILES``)."""
from __future__ import annotations

MODEL_FILE = "model.mqat"          # a trial's final model, packed integers (mqat.export_packed)
ONNX_FILE = "model.onnx"           # the same model as ONNX, QDQ (mqat.export_onnx)
FLOW_STATE_FILE = "flow_state.pt"  # a trial's flow state after its last training stage
