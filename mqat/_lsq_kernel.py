"""The fused CPU kernel of LSQ (``_lsq_cpu.cpp``), compiled on first use and cached.

Torch's extension builder compiles it once per machine (about half a minute) into
``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``); later processes load the
cached library in well under a second. The name carries a hash of the source, so an edited
kernel is rebuilt. Where it cannot be built (no C++ compiler), or with ``MQAT_LSQ_KERNEL=0``,
LSQ falls back to the same formulas in plain torch ops, with one warning.
"""
from __future__ import annotations

import hashlib
import os
import platform
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("_lsq_cpu.cpp")


def enabled() -> bool:
    return os.environ.get("MQAT_LSQ_KERNEL", "1") != "0"


def _vector_flags() -> list[str]:
    """AVX2 where torch itself runs AVX2 kernels (the flags are part of the cache name, so a
    cache shared by different CPUs holds one build per kind)."""
    if platform.machine() in ("x86_64", "AMD64") and \
            torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return ["-mavx2"]
    return []


@lru_cache(maxsize=1)
def cpu_kernel() -> ModuleType | None:
    """The compiled module (``forward``, ``backward``), or None where it cannot be built."""
    if not enabled():
        return None
    from torch.utils.cpp_extension import load

    flags = ["-O3", "-fno-trapping-math", "-ffp-contract=off", "-fopenmp"] + _vector_flags()
    # the torch build too: two environments sharing the cache must not rebuild each other's
    key = SOURCE.read_bytes() + " ".join(flags).encode() + f"{torch.__file__}{torch.__version__}".encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    try:
        return load(name=f"mqat_lsq_cpu_{digest}", sources=[str(SOURCE)], extra_cflags=flags,
                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as err:  # noqa: BLE001 - any build failure means: use the torch ops
        warnings.warn(f"mqat: the fused LSQ CPU kernel could not be built ({type(err).__name__}: "
                      f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}); "
                      "using plain torch ops, which are slower", RuntimeWarning, stacklevel=2)
        return None
