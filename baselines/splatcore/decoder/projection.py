"""EWA projection of 3D Gaussians to 2D image-space Gaussians (pure PyTorch, differentiable).

Follows the upstream / gsplat pinhole rule exactly:

- view-space mean m_c = R m + t and covariance S_c = R S R^T (R, t of the world-to-camera matrix of
  the normalised scene);
- 2D mean (f_x x / z + c_x, f_y y / z + c_y) in continuous pixel coordinates (pixel centres at
  j + 0.5);
- 2D covariance J S_c J^T + eps2d I with the Jacobian J of the perspective map at the mean, where
  x / z and y / z are clamped to the frustum widened by 30 % of the half field of view on each
  side (lim_x = (W - c_x) / f_x + 0.3 tan_fov_x to the right, c_x / f_x + 0.3 tan_fov_x to the left,
  tan_fov_x = W / (2 f_x); upstream's 1.3 tan_fov for a centred principal point);
- conic = inverse of the blurred 2D covariance.

Culling (``visible`` is False): view-space depth z <= near_cull, opacity < 1/255, non-positive
determinant of the blurred 2D covariance, or a footprint that cannot reach any pixel centre.

The footprint ``radius`` (per axis, pixels) is *exact* for the alpha threshold rather than the
3-sigma square box of the upstream CUDA rasteriser: a pixel at horizontal offset |dx| has
sigma >= dx^2 / (2 S_xx), so alpha = o exp(-sigma) < 1/255 whenever |dx| > sqrt(2 S_xx ln(255 o)).
Every pixel that can receive alpha >= 1/255 lies inside the box; the box only saves work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
EPS2D = 0.3
FRUSTUM_MARGIN = 0.3
RADIUS_MARGIN = 1e-3


@dataclass
class Projected:
    """Per (image, Gaussian) projection results; images are I = B * V, flattened (b, v).

    means2d: (I, N, 2) pixel coordinates (pixel centres at j + 0.5).
    conics: (I, N, 3) upper triangle (a, b, c) of the inverse blurred 2D covariance, so that
        sigma = 0.5 (a dx^2 + c dy^2) + b dx dy.
    depths: (I, N) view-space z of the mean in normalised units.
    radius: (I, N, 2) conservative footprint half-size in pixels (no gradient).
    visible: (I, N) False for culled Gaussians (their other values are finite but meaningless).
    """

    means2d: Float[Tensor, "image gaussian 2"]
    conics: Float[Tensor, "image gaussian 3"]
    depths: Float[Tensor, "image gaussian"]
    radius: Float[Tensor, "image gaussian 2"]
    visible: Bool[Tensor, "image gaussian"]


def project_gaussians(
    means: Float[Tensor, "image gaussian 3"],
    covariances: Float[Tensor, "image gaussian 3 3"],
    opacities: Float[Tensor, "image gaussian"],
    viewmats: Float[Tensor, "image 4 4"],
    pixel_k: Float[Tensor, "image 3 3"],
    image_shape: tuple[int, int],
    near_cull: float,
    eps2d: float = EPS2D,
) -> Projected:
    """Project normalised-scene Gaussians into every image (see the module docstring)."""
    height, width = image_shape
    rotation = viewmats[:, None, :3, :3]  # (I, 1, 3, 3)
    translation = viewmats[:, None, :3, 3]
    means_c = (rotation @ means[..., None])[..., 0] + translation
    cov_c = rotation @ covariances @ rotation.transpose(-1, -2)

    z = means_c[..., 2]
    in_front = z > near_cull
    # Culled Gaussians get a harmless depth so that no inf/NaN reaches the gradients.
    z_safe = torch.where(in_front, z, torch.ones_like(z))
    fx = pixel_k[:, None, 0, 0]
    fy = pixel_k[:, None, 1, 1]
    cx = pixel_k[:, None, 0, 2]
    cy = pixel_k[:, None, 1, 2]
    tan_fov_x = 0.5 * width / fx
    tan_fov_y = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FRUSTUM_MARGIN * tan_fov_x
    lim_x_neg = cx / fx + FRUSTUM_MARGIN * tan_fov_x
    lim_y_pos = (height - cy) / fy + FRUSTUM_MARGIN * tan_fov_y
    lim_y_neg = cy / fy + FRUSTUM_MARGIN * tan_fov_y

    x_over_z = means_c[..., 0] / z_safe
    y_over_z = means_c[..., 1] / z_safe
    tx = torch.maximum(torch.minimum(x_over_z, lim_x_pos), -lim_x_neg)
    ty = torch.maximum(torch.minimum(y_over_z, lim_y_pos), -lim_y_neg)
    inv_z = 1.0 / z_safe
    zeros = torch.zeros_like(z)
    jacobian = torch.stack(
        (
            torch.stack((fx * inv_z, zeros, -fx * tx * inv_z), dim=-1),
            torch.stack((zeros, fy * inv_z, -fy * ty * inv_z), dim=-1),
        ),
        dim=-2,
    )  # (I, N, 2, 3)
    cov2d = jacobian @ cov_c @ jacobian.transpose(-1, -2)
    s_xx = cov2d[..., 0, 0] + eps2d
    s_yy = cov2d[..., 1, 1] + eps2d
    s_xy = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = s_xx * s_yy - s_xy * s_xy
    positive = det > 0
    det_safe = torch.where(positive, det, torch.ones_like(det))
    conics = torch.stack((s_yy / det_safe, -s_xy / det_safe, s_xx / det_safe), dim=-1)
    means2d = torch.stack((fx * x_over_z + cx, fy * y_over_z + cy), dim=-1)

    with torch.no_grad():
        log_ratio = torch.log(opacities.clamp_min(1e-30) / ALPHA_THRESHOLD)
        opaque_enough = opacities >= ALPHA_THRESHOLD
        extent = torch.sqrt(2.0 * log_ratio.clamp_min(0.0))
        s_xx_ok = torch.where(positive, s_xx, torch.ones_like(s_xx)).clamp_min(0.0)
        s_yy_ok = torch.where(positive, s_yy, torch.ones_like(s_yy)).clamp_min(0.0)
        # A small margin keeps the box conservative under float rounding of sigma and alpha.
        radius = torch.stack((extent * s_xx_ok.sqrt(), extent * s_yy_ok.sqrt()), dim=-1)
        radius = radius * (1.0 + RADIUS_MARGIN) + RADIUS_MARGIN
        centre = means2d.detach()
        on_image = (
            (centre[..., 0] + radius[..., 0] > 0)
            & (centre[..., 0] - radius[..., 0] < width)
            & (centre[..., 1] + radius[..., 1] > 0)
            & (centre[..., 1] - radius[..., 1] < height)
        )
        visible = in_front & positive & opaque_enough & on_image & torch.isfinite(radius).all(-1)
    return Projected(means2d=means2d, conics=conics, depths=z, radius=radius, visible=visible)


