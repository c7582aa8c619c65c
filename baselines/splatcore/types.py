"""Core data types shared by the datasets, encoders, decoder and model wrapper (upstream layout).

Conventions: extrinsics are camera-to-world 4x4 in OpenCV axes (x right, y down, z forward);
intrinsics are 3x3 and normalised (row 0 divided by the image width, row 1 by the height); images
are float in [0, 1]; ``index`` holds positions in the scene's stored frame list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from jaxtyping import Float, Int64
from torch import Tensor


class BatchedViews(TypedDict, total=False):
    """One set of views (context or target) of a batch. Optional keys: ``depth`` (B, V, H, W)
    and ``pointmap`` (B, V, H, W, 3), present only when the dataset is asked to load them."""

    extrinsics: Float[Tensor, "batch view 4 4"]
    intrinsics: Float[Tensor, "batch view 3 3"]
    image: Float[Tensor, "batch view 3 height width"]
    near: Float[Tensor, "batch view"]
    far: Float[Tensor, "batch view"]
    index: Int64[Tensor, "batch view"]
    depth: Float[Tensor, "batch view height width"]
    pointmap: Float[Tensor, "batch view height width 3"]


class BatchedExample(TypedDict, total=False):
    context: BatchedViews
    target: BatchedViews
    scene: list[str]


# Unbatched versions (what a Dataset yields before collation): same keys without the batch axis.
UnbatchedViews = dict
UnbatchedExample = dict


@dataclass
class Gaussians:
    """Flattened Gaussians, G = V * H * W * surfaces * gaussians_per_pixel, in (view, row, column)
    order. Everything is in world coordinates.

    means: (B, G, 3) centres.
    covariances: (B, G, 3, 3) world-frame covariances.
    harmonics: (B, G, 3, d_sh) real SH coefficients per colour channel (channel-major), rotated to
        the world frame, d_sh = (sh_degree + 1) ** 2.
    opacities: (B, G) in [0, 1].
    """

    means: Float[Tensor, "batch gaussian 3"]
    covariances: Float[Tensor, "batch gaussian 3 3"]
    harmonics: Float[Tensor, "batch gaussian 3 d_sh"]
    opacities: Float[Tensor, "batch gaussian"]


@dataclass
class DecoderOutput:
    """Rendered target views: color (B, V, 3, H, W), depth (B, V, H, W) or None, and the
    accumulated alpha (B, V, H, W) or None."""

    color: Float[Tensor, "batch view 3 height width"]
    depth: Float[Tensor, "batch view height width"] | None = None
    alpha: Float[Tensor, "batch view height width"] | None = None
