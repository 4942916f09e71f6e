"""6b. The QC paper's claim on the detector it was made for: an Ultralytics YOLOv8n (the ``yolo``
task, configs/yolo.yaml; needs the ``yolo`` extra) at W4A8, plain LSQ against EMA, QC, EMA+QC and
BN re-estimation from the same runs (paired), three seeds, COCO mAP@[.5:.95] on the test split."""
from __future__ import annotations

import importlib.util

from .fidelity import Arm, run_arms
from .timing import row

SECTION = "fidelity-yolo"
ARMS = (Arm("4-4-4 joint", (4, 4, 4), fixes=True),)
CLAIMS = (
    ("QAT beats PTQ at W4A8", "4-4-4 joint", "LSQ", "PTQ W4A8", None),
    ("EMA beats LSQ at W4A8", "4-4-4 joint", "EMA", "4-4-4 joint", "LSQ"),
    ("QC beats LSQ at W4A8", "4-4-4 joint", "QC", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats LSQ at W4A8", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats EMA at W4A8", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "EMA"),
    ("BN re-estimation beats LSQ at W4A8", "4-4-4 joint", "BN", "4-4-4 joint", "LSQ"),
    ("QC beats BN re-estimation at W4A8", "4-4-4 joint", "QC", "4-4-4 joint", "BN"),
    ("EMA+QC beats EMA+BN at W4A8", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "EMA+BN"),
)


def run(quick: bool = False) -> list[dict]:
    if importlib.util.find_spec("ultralytics") is None:  # an optional extra (AGPL-3.0): a full bench goes on
        return [row(SECTION, "skipped", None, note="needs the yolo extra: pip install -e '.[yolo]'")]
    return run_arms(quick, ARMS, CLAIMS, section=SECTION, task_name="yolo")
