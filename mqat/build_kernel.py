"""``python -m mqat.build_kernel``: compile (or find cached) the fused LSQ CPU kernel now, at
setup, so that no trial pays the compile; prints where it is or why LSQ falls back to torch ops."""
from __future__ import annotations

import time
import warnings

from ._lsq_kernel import cpu_kernel, enabled


def main() -> int:
    if not enabled():
        print("mqat: MQAT_LSQ_KERNEL=0: LSQ runs as torch ops")
        return 0
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernel = cpu_kernel()
    if kernel is None:
        print(f"mqat: {caught[-1].message if caught else 'the LSQ kernel was not built'}")
        return 0  # not an error: the torch-ops path is correct, only slower
    print(f"mqat: fused LSQ CPU kernel ready in {time.perf_counter() - start:.1f} s: {kernel.__file__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
