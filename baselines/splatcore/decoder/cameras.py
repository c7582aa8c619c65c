"""Camera helpers of the splatting decoder: field of view, pixel intrinsics, view matrices.

Conventions: extrinsics are camera-to-world (OpenCV axes: x right, y down, z forward);
intrinsics are normalised (row 0 divided by the width, row 1 by the height). Pixel intrinsics use
continuous pixel coordinates in which pixel (row i, column j) has its centre at (j + 0.5, i + 0.5),
so a principal point at (W/2, H/2) puts the optical axis at pixel index ((W-1)/2, (H-1)/2) -- the
same place as upstream's "NDC -1 maps to pixel -0.5" convention with integer pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


def get_fov(intrinsics: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 2"]:
    """Horizontal and vertical field of view (radians) of normalised intrinsics.

    fov_x is the angle between the rays through the normalised image points (0, 0.5) and (1, 0.5),
    fov_y between the rays through (0.5, 0) and (0.5, 1) -- the upstream definition, which for a
    centred principal point equals 2 atan(1 / (2 f)).
    """
    k_inv = torch.linalg.inv(intrinsics)

    def ray(u: float, v: float) -> Tensor:
        point = intrinsics.new_tensor([u, v, 1.0])
        direction = (k_inv @ point[:, None])[..., 0]
        return direction / direction.norm(dim=-1, keepdim=True)

    def angle(a: Tensor, b: Tensor) -> Tensor:
        return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(dim=-1))

    fov_x = angle(ray(0.0, 0.5), ray(1.0, 0.5))
    fov_y = angle(ray(0.5, 0.0), ray(0.5, 1.0))
    return torch.stack((fov_x, fov_y), dim=-1)


def pixel_intrinsics(
    intrinsics: Float[Tensor, "*batch 3 3"],
    image_shape: tuple[int, int],
    use_principal_point: bool = False,
) -> Float[Tensor, "*batch 3 3"]:
    """Pixel-unit intrinsics for an (H, W) image.

    ``use_principal_point=False`` (upstream): a symmetric frustum, f_x = W / (2 tan(fov_x / 2)),
    f_y likewise, principal point (W/2, H/2); cx, cy of ``intrinsics`` are ignored.
    ``use_principal_point=True``: K scaled by (W, H) as it is, so the true principal point is used.
    """
    height, width = image_shape
    k = torch.zeros_like(intrinsics)
    k[..., 2, 2] = 1.0
    if use_principal_point:
        k[..., 0, :] = intrinsics[..., 0, :] * width
        k[..., 1, :] = intrinsics[..., 1, :] * height
        k[..., 0, 1] = 0.0  # skew is not supported by the rasterisers; validated by the caller
        return k
    tan_half = torch.tan(0.5 * get_fov(intrinsics))
    k[..., 0, 0] = width / (2.0 * tan_half[..., 0])
    k[..., 1, 1] = height / (2.0 * tan_half[..., 1])
    k[..., 0, 2] = width / 2.0
    k[..., 1, 2] = height / 2.0
    return k


@dataclass
class RenderCameras:
    """Target cameras prepared for rasterisation (I = batch * views images).

    viewmats: (B, V, 4, 4) world-to-camera matrices of the *normalised* scene (the scene is
        multiplied by ``scale`` per camera, so the translation is scaled too).
    pixel_k: (B, V, 3, 3) pixel intrinsics (see :func:`pixel_intrinsics`).
    scale: (B, V) the factor applied to the scene for this camera (1 / near, or 1).
    """

    viewmats: Float[Tensor, "batch view 4 4"]
    pixel_k: Float[Tensor, "batch view 3 3"]
    scale: Float[Tensor, "batch view"]


def prepare_cameras(
    extrinsics: Float[Tensor, "batch view 4 4"],
    intrinsics: Float[Tensor, "batch view 3 3"],
    near: Float[Tensor, "batch view"],
    image_shape: tuple[int, int],
    scale_invariant: bool = True,
    use_principal_point: bool = False,
) -> RenderCameras:
    """World-to-camera matrices of the normalised scene and pixel intrinsics.

    With ``scale_invariant`` every camera sees the scene scaled by 1 / near (upstream default), so
    the near-plane cull, which acts on normalised depth, sits at a fixed multiple of ``near``.
    """
    scale = 1.0 / near if scale_invariant else torch.ones_like(near)
    c2w = extrinsics.clone()
    c2w[..., :3, 3] = c2w[..., :3, 3] * scale[..., None]
    viewmats = torch.linalg.inv(c2w)
    return RenderCameras(
        viewmats=viewmats,
        pixel_k=pixel_intrinsics(intrinsics, image_shape, use_principal_point),
        scale=scale,
    )
