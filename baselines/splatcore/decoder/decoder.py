"""The splatting decoder: Gaussians + target cameras -> colour, optional depth, accumulated alpha.

Upstream-compatible interface (``splatting_cuda``)::

    decoder(gaussians, extrinsics, intrinsics, near, far, image_shape, depth_mode=None)
        -> DecoderOutput(color (B, V, 3, H, W), depth (B, V, H, W) | None, alpha (B, V, H, W))

Semantics (defaults = upstream, see ``DecoderSplattingCfg`` for the options):

1. Each target camera sees the scene scaled by 1 / near (``scale_invariant``); Gaussians with
   normalised view-space depth z <= 0.2 are culled, i.e. z <= 0.2 near in world units; far has no
   effect on the colour.
2. Symmetric frustum from the field of view of the normalised intrinsics (cx, cy ignored).
3. Colour of a Gaussian = permuted-basis real SH up to degree 3 at d = normalise(mean - camera
   centre), + 0.5, clamped >= 0 (``sh``).
4. EWA projection with the 0.3 px^2 low-pass (``projection``), alpha = min(0.99, o e^{-sigma}),
   alpha < 1/255 skipped, front-to-back compositing by view-space depth with the 1e-4 early stop
   (``rasterize_torch``); colour = sum w c + T background; alpha = sum w.
5. ``depth_mode``: a per-Gaussian value composited with the *same* weights and a zero background,
   not divided by alpha (unless ``normalize_depth``):
   ``"depth"`` z (world units, camera-space z of the mean), ``"disparity"`` 1 / z,
   ``"relative_disparity"`` (1/z - 1/far) / (1/near - 1/far) (1 at near, 0 at far; splatcore's
   definition of the MVSplat-only mode), ``"log"`` log(max(min(z, near), far)) -- upstream's log mode
   with its min/max swapped, which evaluates to log(far) for every Gaussian when near < far; it is
   reproduced as is.

Backends: ``gsplat`` (CUDA, one batched call) and ``torch`` (exact pure PyTorch, CPU or CUDA);
``auto`` picks gsplat when the Gaussians are on a CUDA device and gsplat imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..types import DecoderOutput, Gaussians
from .backend_gsplat import gsplat_available, rasterize_gsplat
from .cameras import prepare_cameras
from .config import DecoderSplattingCfg
from ..errors import ConfigError
from .projection import project_gaussians
from .rasterize_torch import rasterize_torch
from .sh import sh_degree_of, sh_to_rgb
from .validation import check_shapes, check_values

DEPTH_MODES = ("depth", "disparity", "relative_disparity", "log")


def _background_from(dataset_cfg: Any, background_color: Sequence[float] | None) -> list[float]:
    if background_color is not None:
        values = list(background_color)
    elif dataset_cfg is None:
        values = [0.0, 0.0, 0.0]
    elif isinstance(dataset_cfg, Mapping):
        values = list(dataset_cfg.get("background_color", [0.0, 0.0, 0.0]))
    else:
        values = list(getattr(dataset_cfg, "background_color", [0.0, 0.0, 0.0]))
    if len(values) != 3:
        raise ConfigError(
            f"background_color must have 3 values (RGB in [0, 1]), got {values}."
        )
    return [float(v) for v in values]


def symmetric_from_upper(
    covariances: Float[Tensor, "*batch 3 3"],
) -> Float[Tensor, "*batch 3 3"]:
    """The symmetric matrix holding the upper triangle of ``covariances`` (what the CUDA
    rasterisers read: upstream's 6-value cov3D_precomp, gsplat's ``covars``). Gradients reach the
    upper triangle only."""
    upper = torch.triu(covariances)
    return upper + torch.triu(covariances, diagonal=1).transpose(-1, -2)


def depth_values(
    z: Float[Tensor, "batch view gaussian"],
    near: Float[Tensor, "batch view"],
    far: Float[Tensor, "batch view"],
    mode: str,
) -> Float[Tensor, "batch view gaussian"]:
    """The per-Gaussian value the depth pass composites (``z`` in world units, positive)."""
    near_ = near[..., None]
    far_ = far[..., None]
    if mode == "depth":
        return z
    if mode == "disparity":
        return 1.0 / z
    if mode == "relative_disparity":
        return (1.0 / z - 1.0 / far_) / (1.0 / near_ - 1.0 / far_)
    if mode == "log":
        return torch.log(torch.maximum(torch.minimum(z, near_), far_))
    raise ConfigError(f"depth_mode={mode!r} is unknown; use None or one of {DEPTH_MODES}.")


class Decoder(nn.Module):
    """Splatting decoder with a gsplat (CUDA) and an exact PyTorch backend (module docstring).

    ``background_color`` comes from the dataset config (``dataset_cfg.background_color``, black
    upstream) or is given directly; it is a non-persistent buffer, so it never enters checkpoints.
    """

    background_color: Tensor

    def __init__(
        self,
        cfg: DecoderSplattingCfg | None = None,
        dataset_cfg: Any = None,
        background_color: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else DecoderSplattingCfg()
        self.dataset_cfg = dataset_cfg
        self.register_buffer(
            "background_color",
            # float64 so that a float64 decoder sees the exact configured values.
            torch.tensor(_background_from(dataset_cfg, background_color), dtype=torch.float64),
            persistent=False,
        )

    def resolve_backend(self, device: torch.device) -> str:
        """``"gsplat"`` or ``"torch"``: what ``cfg.backend`` means for tensors on ``device``."""
        if self.cfg.backend != "auto":
            return self.cfg.backend
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"

    def forward(
        self,
        gaussians: Gaussians,
        extrinsics: Float[Tensor, "batch view 4 4"],
        intrinsics: Float[Tensor, "batch view 3 3"],
        near: Float[Tensor, "batch view"],
        far: Float[Tensor, "batch view"],
        image_shape: tuple[int, int],
        depth_mode: str | None = None,
    ) -> DecoderOutput:
        cfg = self.cfg
        image_shape = (int(image_shape[0]), int(image_shape[1]))
        if depth_mode is not None and depth_mode not in DEPTH_MODES:
            raise ConfigError(
                f"depth_mode={depth_mode!r} is unknown; use None or one of {DEPTH_MODES}."
            )
        check_shapes(gaussians, extrinsics, intrinsics, near, far, image_shape)
        sh_degree_of(gaussians.harmonics.shape[-1])
        if cfg.validate_inputs:
            check_values(gaussians, extrinsics, intrinsics, near, far)
        backend = self.resolve_backend(gaussians.means.device)

        batch, views = extrinsics.shape[:2]
        count = gaussians.means.shape[1]
        height, width = image_shape
        cameras = prepare_cameras(
            extrinsics, intrinsics, near, image_shape, cfg.scale_invariant, cfg.use_principal_point
        )
        scale = cameras.scale[..., None, None]  # (B, V, 1, 1)
        means = gaussians.means[:, None] * scale  # (B, V, G, 3), normalised per camera
        covariances = symmetric_from_upper(gaussians.covariances)[:, None] * scale[..., None] ** 2
        opacities = gaussians.opacities[:, None].expand(batch, views, count)

        # View-dependent colour: direction from the camera centre to the mean (scale-free).
        offsets = gaussians.means[:, None] - extrinsics[:, :, None, :3, 3]
        directions = offsets / offsets.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        harmonics = gaussians.harmonics[:, None].expand(batch, views, *gaussians.harmonics.shape[1:])
        features = sh_to_rgb(harmonics, directions)  # (B, V, G, 3)
        background = self.background_color.to(features)
        backgrounds = background.expand(batch * views, 3)
        if depth_mode is not None:
            view_rows = cameras.viewmats[:, :, None, 2, :]  # (B, V, 1, 4)
            z_normalised = (means * view_rows[..., :3]).sum(-1) + view_rows[..., 3]
            in_front = z_normalised > cfg.near_cull_factor
            z_world = torch.where(in_front, z_normalised, torch.ones_like(z_normalised)) / scale[..., 0]
            values = depth_values(z_world, near, far, depth_mode)
            values = torch.where(in_front, values, torch.zeros_like(values))
            features = torch.cat((features, values[..., None]), dim=-1)
            backgrounds = torch.cat((backgrounds, backgrounds.new_zeros(batch * views, 1)), dim=-1)

        images = batch * views
        flat = dict(
            means=means.reshape(images, count, 3),
            covariances=covariances.reshape(images, count, 3, 3),
            opacities=opacities.reshape(images, count),
            features=features.reshape(images, count, -1),
            viewmats=cameras.viewmats.reshape(images, 4, 4),
            pixel_k=cameras.pixel_k.reshape(images, 3, 3),
        )
        if backend == "gsplat":
            rendered, alpha = rasterize_gsplat(
                backgrounds=backgrounds,
                image_shape=image_shape,
                near_cull=cfg.near_cull_factor,
                **flat,
            )
        else:
            projected = project_gaussians(
                flat["means"],
                flat["covariances"],
                flat["opacities"],
                flat["viewmats"],
                flat["pixel_k"],
                image_shape,
                near_cull=cfg.near_cull_factor,
            )
            composited, alpha, transmittance = rasterize_torch(
                projected.means2d,
                projected.conics,
                flat["opacities"],
                flat["features"],
                projected.depths,
                projected.radius,
                projected.visible,
                image_shape,
                tile_size=cfg.tile_size,
                max_chunk_elements=cfg.max_chunk_elements,
                use_checkpoint=cfg.checkpoint,
            )
            rendered = composited + transmittance[..., None] * backgrounds[:, None, None, :]

        rendered = rendered.reshape(batch, views, height, width, -1)
        alpha = alpha.reshape(batch, views, height, width)
        color = rendered[..., :3].permute(0, 1, 4, 2, 3)
        depth = None
        if depth_mode is not None:
            depth = rendered[..., 3]
            if cfg.normalize_depth:
                depth = torch.where(alpha > 0, depth / alpha.clamp_min(1e-12), torch.zeros_like(depth))
        return DecoderOutput(color=color, depth=depth, alpha=alpha)
