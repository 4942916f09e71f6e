"""5b. One input quantizer per shared tensor (``search.stage.share_inputs``): what it costs in
accuracy, before it may become the default. The readers of a backbone stage's output (the next
block's convolution and shortcut, the FPN's lateral) share one step, so that a runtime can fuse
the tensor's one Quantize into the convolution that made it; each arm trained with and without,
three seeds, the same runs' models paired by seed, ADD-0.1d on the test split. Beside them, W8A8
with the first and last layers quantized too (``task.fp_first_last: false``): with every layer
int8 a runtime runs no float convolution and none of the conversions around one."""
from __future__ import annotations

from .fidelity import Arm, run_arms

SECTION = "fidelity-shared"
ARMS = (Arm("W8A8 QAT", (8, 8, 8)), Arm("W8A8 QAT, shared inputs", (8, 8, 8), shared_inputs=True),
        Arm("W8A8 QAT, shared inputs, first and last layers quantized", (8, 8, 8), shared_inputs=True,
            quantize_first_last=True),
        Arm("4-4-4 sensitive-first", (4, 4, 4), "sensitive"),
        Arm("4-4-4 sensitive-first, shared inputs", (4, 4, 4), "sensitive", shared_inputs=True))
CLAIMS = (
    ("shared input quantizers beat separate ones at W8A8", "W8A8 QAT, shared inputs", "LSQ", "W8A8 QAT", "LSQ"),
    ("full-precision first and last layers beat quantized ones at W8A8 (shared inputs)", "W8A8 QAT, shared inputs",
     "LSQ", "W8A8 QAT, shared inputs, first and last layers quantized", "LSQ"),
    ("shared input quantizers beat separate ones at 4-4-4 (gradated)", "4-4-4 sensitive-first, shared inputs", "LSQ",
     "4-4-4 sensitive-first", "LSQ"),
    ("shared input quantizers beat separate ones at 4-4-4, EMA", "4-4-4 sensitive-first, shared inputs", "EMA",
     "4-4-4 sensitive-first", "EMA"),
)


def run(quick: bool = False) -> list[dict]:
    return run_arms(quick, ARMS, CLAIMS, section=SECTION)
