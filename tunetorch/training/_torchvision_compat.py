"""Import torchvision on a CPU-only torch.

Why: PyPI's torchvision 0.28.0 wheel is a CUDA build. Its C++ extension `_C.so` links
against libtorch_cuda, which a CPU build of torch does not ship, so the extension fails
to load. torchvision tolerates that (its ops then raise "Couldn't load custom C++ ops"),
except for two `torch.library.register_fake("torchvision::nms" / "torchvision::qnms")`
calls in `_meta_registrations.py`, which run unconditionally at import and fail with
`RuntimeError: operator torchvision::nms does not exist`.

The fix: when, and only when, the extension cannot load, define the schemas of those
operators (no kernels) before importing torchvision. The data sets, transforms and
models import and work; calling the detection ops (nms, roi_align, ...) still fails
loudly, as it should without their kernels. On a machine whose torchvision extension
loads (any matching CUDA or CPU pair), this module does nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The ops that torchvision registers fake/meta kernels for unconditionally at import.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keeps the torch.library.Library (and so the definitions) alive


def extension_loads() -> bool:
    """Whether torchvision's compiled extension loads with the installed torch."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed; pip install torchvision==0.28.0")
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(
        Path(spec.origin).parent.glob("_C*.pyd")
    )
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def import_torchvision():
    """`import torchvision`, defining the missing operator schemas first if needed."""
    global _library
    import sys

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if not extension_loads() and _library is None:
        import torch

        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _library.define(schema)
    import torchvision

    return torchvision
