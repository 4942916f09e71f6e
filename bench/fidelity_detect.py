"""6. Fidelity on detection: the claims of the second method (EMA of the QAT weights and QC
against weight oscillation, from low-bit YOLO detection) measured on the ``detect`` task, as
the pose claims are in section 5: uniform 4 and 3 bits, LSQ against EMA, QC, EMA+QC and BN
re-estimation from the same runs (paired), three seeds, COCO mAP@[.5:.95] on the test split."""
from __future__ import annotations

from .fidelity import Arm, run_arms

SECTION = "fidelity-detect"
ARMS = (Arm("W8A8 QAT", (8, 8, 8)), Arm("4-4-4 joint", (4, 4, 4), fixes=True),
        Arm("3-3-3 joint", (3, 3, 3), fixes=True))
CLAIMS = (
    ("QAT beats PTQ at W4A8", "4-4-4 joint", "LSQ", "PTQ W4A8", None),
    ("EMA beats LSQ at 4 bits", "4-4-4 joint", "EMA", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats LSQ at 4 bits", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "LSQ"),
    ("EMA+QC beats EMA at 4 bits", "4-4-4 joint", "EMA+QC", "4-4-4 joint", "EMA"),
    ("QC beats BN re-estimation at 4 bits", "4-4-4 joint", "QC", "4-4-4 joint", "BN"),
    ("BN re-estimation beats LSQ at 4 bits", "4-4-4 joint", "BN", "4-4-4 joint", "LSQ"),
    ("EMA beats LSQ at 3 bits", "3-3-3 joint", "EMA", "3-3-3 joint", "LSQ"),
    ("EMA+QC beats LSQ at 3 bits", "3-3-3 joint", "EMA+QC", "3-3-3 joint", "LSQ"),
    ("EMA+QC beats EMA at 3 bits", "3-3-3 joint", "EMA+QC", "3-3-3 joint", "EMA"),
    ("QC beats BN re-estimation at 3 bits", "3-3-3 joint", "QC", "3-3-3 joint", "BN"),
    ("BN re-estimation beats LSQ at 3 bits", "3-3-3 joint", "BN", "3-3-3 joint", "LSQ"),
)


def run(quick: bool = False) -> list[dict]:
    return run_arms(quick, ARMS, CLAIMS, section=SECTION, task_name="detect")
