"""torchvision's model builders where its compiled operators cannot load.

On a CPU-only torch, the package registry's torchvision (a CUDA build) fails at import:
``RuntimeError: operator torchvision::nms does not exist``. Its model builders are pure Python;
only the import trips, where it registers fake kernels for ``nms`` and ``qnms``, two operators
its unloaded library would have declared. Declaring their schemas first lets the import finish;
the network builders then work, and an operator called anyway (``torchvision.ops.nms``) fails
with torchvision's own message that its C++ operators did not load. A torchvision whose library
loads (a matching CPU build, or CUDA beside CUDA torch) is imported untouched.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

from ..cachefile import in_ray_worker

#: what torchvision's import registers fake kernels for, unconditionally (torchvision 0.2x)
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # the torch.library.Library that holds the declared schemas, kept alive
CPU_WHEELS = "pip install torchvision --index-url https://download.pytorch.org/whl/cpu"


def _declare_schemas() -> None:
    global _library
    import torch

    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")  # declares schemas, no kernels
        for schema in _SCHEMAS.values():
            _library.define(schema)


def import_torchvision() -> ModuleType:
    """``torchvision``, imported; where its operators cannot load, with their schemas declared
    first (a warning says so once). ImportError if torchvision is not installed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported package, imported again below
    _declare_schemas()
    if not in_ray_worker():  # said once, on the driver, not again by every trial
        warnings.warn("torchvision's compiled operators do not load beside this torch (a CUDA torchvision on a "
                      "CPU torch?): its model builders work, its operators (nms, roi_align) do not; for a "
                      f"matching CPU build: {CPU_WHEELS}", RuntimeWarning, stacklevel=2)
    return importlib.import_module("torchvision")


def needs_torchvision(module_name: str) -> bool:
    """Whether importing ``module_name`` imports torchvision (torchvision itself, timm)."""
    return module_name.split(".")[0] in {"torchvision", "timm"}
