"""pmsplat: PM-Loss for feed-forward 3D Gaussian Splatting.

Public API (imported lazily so that ``import pmsplat`` stays cheap)::

    from pmsplat import PMLoss, pm_loss, similarity_align, nearest_neighbors

Conventions used throughout: camera-to-world extrinsics, OpenCV camera axes (x right, y down,
z forward), intrinsics normalised by image width/height, images in [0, 1], points flattened in
(view, row, column) order.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "PMLoss": "pmsplat.loss",
    "PMLossConfig": "pmsplat.loss",
    "pm_loss": "pmsplat.loss",
    "similarity_align": "pmsplat.align",
    "SimilarityTransform": "pmsplat.align",
    "nearest_neighbors": "pmsplat.knn",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pmsplat' has no attribute {name!r}")
