"""The MVSplat encoder (upstream ``EncoderCostVolume``): context views -> pixel-aligned Gaussians.

Module names (``backbone``, ``depth_predictor``, ``gaussian_adapter``) and parameter shapes equal
the upstream ones, so the ``encoder.*`` entries of an official checkpoint load with no missing or
unexpected keys (``load_state_dict`` of this module, after stripping the ``encoder.`` prefix).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from splatcore.dataset.shims import apply_patch_shim
from splatcore.model.gaussian_adapter import GaussianAdapter
from splatcore.types import BatchedExample, BatchedViews, Gaussians

from .backbone import BackboneMultiview
from .config import EncoderCostVolumeCfg
from .depth_predictor import DepthPredictorMultiView
from .errors import MVSplatError

UNSUPPORTED_ABLATIONS = ("wo_depth_refine", "wo_cost_volume", "wo_backbone_cross_attn", "wo_cost_volume_refine", "use_epipolar_trans")


def pixel_centres(height: int, width: int, device: torch.device) -> Float[Tensor, "pixel 2"]:
    """Normalised pixel centres ((col + 0.5) / W, (row + 0.5) / H), row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).reshape(height * width, 2)


class EncoderCostVolume(nn.Module):
    """MVSplat encoder; see the package docstring and ``EncoderCostVolumeCfg``."""

    def __init__(self, cfg: EncoderCostVolumeCfg):
        super().__init__()
        self._validate(cfg)
        self.cfg = cfg
        self.backbone = BackboneMultiview(cfg.d_feature, cfg.downscale_factor)
        self.gaussian_adapter = GaussianAdapter(cfg.gaussian_adapter)
        raw_channels = cfg.num_surfaces * (2 + self.gaussian_adapter.d_in)
        self.depth_predictor = DepthPredictorMultiView(
            feature_channels=cfg.d_feature,
            upscale_factor=cfg.downscale_factor,
            num_depth_candidates=cfg.num_depth_candidates,
            costvolume_unet_feat_dim=cfg.costvolume_unet_feat_dim,
            costvolume_unet_channel_mult=tuple(cfg.costvolume_unet_channel_mult),
            costvolume_unet_attn_res=tuple(cfg.costvolume_unet_attn_res),
            depth_unet_feat_dim=cfg.depth_unet_feat_dim,
            depth_unet_attn_res=tuple(cfg.depth_unet_attn_res),
            depth_unet_channel_mult=tuple(cfg.depth_unet_channel_mult),
            gaussian_raw_channels=raw_channels,
            gaussians_per_pixel=cfg.gaussians_per_pixel,
        )

    @staticmethod
    def _validate(cfg: EncoderCostVolumeCfg) -> None:
        enabled = [name for name in UNSUPPORTED_ABLATIONS if getattr(cfg, name)]
        if enabled:
            raise MVSplatError(
                f"The MVSplat ablation switches {enabled} are not ported (only the released "
                "architecture is); set them to false."
            )
        if cfg.num_surfaces != 1 or cfg.gaussians_per_pixel != 1:
            raise MVSplatError(
                "Only num_surfaces = 1 and gaussians_per_pixel = 1 are supported (every released "
                f"MVSplat config); got {cfg.num_surfaces} and {cfg.gaussians_per_pixel}."
            )

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this: the 1/s features are cut into
        attn_split x attn_split windows and downsampled by the cost-volume U-Net, and the
        full-resolution refinement U-Net downsamples len(depth_unet_channel_mult) - 1 times
        (16 for the released config)."""
        cfg = self.cfg
        return math.lcm(
            cfg.downscale_factor * cfg.multiview_trans_attn_split,
            cfg.downscale_factor * 2 ** (len(cfg.costvolume_unet_channel_mult) - 1),
            2 ** (len(cfg.depth_unet_channel_mult) - 1),
        )

    def map_pdf_to_opacity(self, pdf: Tensor, global_step: int) -> Tensor:
        """0.5 (1 - (1 - p)^e + p^(1/e)), e = 2^x, x from ``opacity_mapping`` (identity for 0, 0)."""
        mapping = self.cfg.opacity_mapping
        x = mapping.initial + min(global_step / mapping.warm_up, 1) * (mapping.final - mapping.initial)
        exponent = 2**x
        return 0.5 * (1 - (1 - pdf) ** exponent + pdf ** (1 / exponent))

    def _check_context(self, context: BatchedViews) -> None:
        for key in ("image", "extrinsics", "intrinsics", "near", "far"):
            if key not in context:
                raise MVSplatError(f"The context views lack '{key}'; a BatchedViews dict needs it.")
        b, v, _, h, w = context["image"].shape
        multiple = self.size_multiple
        if h % multiple or w % multiple:
            raise MVSplatError(
                f"MVSplat needs image sizes that are multiples of {multiple}, got {h}x{w}; apply the "
                "encoder's data shim (get_data_shim) or crop the images."
            )
        if v < 2:
            raise MVSplatError(
                f"MVSplat needs at least 2 context views (cross-view attention and the cost volume "
                f"match each view against the others), got {v}; sample 2 or more context views."
            )

    def forward(
        self,
        context: BatchedViews,
        global_step: int,
        deterministic: bool = False,
        visualization_dump: dict | None = None,
        scene_names: list | None = None,
        intermediates: dict[str, Tensor] | None = None,
    ) -> Gaussians:
        """Predict V*H*W Gaussians (view-major, then row-major pixels) from the context views.

        Any V >= 2 and any image size that is a multiple of ``size_multiple`` (16), square or not;
        V is read from ``context["image"]`` on every call (transformer partners, cost-volume
        partners and the U-Nets' cross-view groups all follow it), so it may change between batches.

        ``deterministic`` and ``scene_names`` are accepted for interface compatibility and
        ignored, as upstream. ``visualization_dump`` receives ``depth`` (B, V, H, W, 1, 1),
        ``scales`` (B, G, 3) and ``rotations`` (B, G, 4, xyzw), both camera-frame.
        ``intermediates`` receives the parity stage tensors (``inter_*``, (v b) order, except
        ``inter_transformer_features`` (B, V, C, h, w)) when given; otherwise nothing is kept.
        """
        self._check_context(context)
        images = context["image"]
        b, v, _, h, w = images.shape
        transformer_features, cnn_features = self.backbone(images, self.cfg.multiview_trans_attn_split)
        depths, densities, raw = self.depth_predictor(
            transformer_features,
            cnn_features,
            images,
            context["intrinsics"],
            context["extrinsics"],
            context["near"],
            context["far"],
            intermediates=intermediates,
        )
        if intermediates is not None:
            intermediates["inter_backbone_cnn_features"] = cnn_features.transpose(0, 1).flatten(0, 1)
            intermediates["inter_transformer_features"] = transformer_features
        xy = pixel_centres(h, w, images.device)
        pixel_size = 1 / torch.tensor((w, h), dtype=torch.float32, device=images.device)
        xy = xy + (raw[..., :2].sigmoid() - 0.5) * pixel_size  # (b, v, hw, 2)
        opacities = self.map_pdf_to_opacity(densities, global_step) / self.cfg.gaussians_per_pixel
        gaussians = self.gaussian_adapter(
            context["extrinsics"][:, :, None],
            context["intrinsics"][:, :, None],
            xy,
            depths,
            opacities,
            raw[..., 2:],
            (h, w),
        )
        if visualization_dump is not None:
            visualization_dump["depth"] = depths.reshape(b, v, h, w, 1, 1)
            visualization_dump["scales"] = gaussians.scales.reshape(b, -1, 3)
            visualization_dump["rotations"] = gaussians.rotations.reshape(b, -1, 4)
        return Gaussians(
            means=gaussians.means.reshape(b, -1, 3),
            covariances=gaussians.covariances.reshape(b, -1, 3, 3),
            harmonics=gaussians.harmonics.reshape(b, -1, 3, self.gaussian_adapter.d_sh),
            opacities=gaussians.opacities.reshape(b, -1),
        )

    def get_data_shim(self) -> Callable[[BatchedExample], BatchedExample]:
        """Centre-crop every view set to multiples of shim_patch_size * downscale_factor (16)."""
        patch_size = self.cfg.shim_patch_size * self.cfg.downscale_factor

        def data_shim(batch: BatchedExample) -> BatchedExample:
            return apply_patch_shim(batch, patch_size)

        return data_shim
