"""The DepthSplat encoder (Oct-2024 release, the code PM-Loss forked): context views ->
pixel-aligned 3D Gaussians (one per pixel and view) and per-view depth.

forward(context, global_step, deterministic=False, visualization_dump=None, scene_names=None,
intermediates=None):
    context: image [B, V, 3, H, W] in [0, 1]; extrinsics [B, V, 4, 4] camera-to-world (OpenCV);
        intrinsics [B, V, 3, 3] normalised; near, far [B, V].
    returns Gaussians (means [B', G, 3], covariances [B', G, 3, 3] world frame, harmonics
        [B', G, 3, d_sh] world frame, opacities [B', G]) with G = V*H*W in (view, row, column)
        order, or {"gaussians": ..., "depths": [B', V, H, W]} when ``return_depth``; B' = B, or
        B * number of depth predictions in training with ``supervise_intermediate_depth``
        (intermediate depths first, the final depth last; the colour head is shared).
    visualization_dump receives depth [B', V, H, W, 1, 1], scales [B', G, 3] and rotations
        [B', G, 4] (xyzw), both in the camera frame; intermediates receives the parity-fixture
        stage tensors (``inter_*``). ``global_step``, ``deterministic`` and ``scene_names`` do not
        change the result (as upstream).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from pmsplat.adapter import fork  # PM-Loss fork
from torch import Tensor, nn

from splatcore.dataset.shims import apply_patch_shim
from splatcore.model.gaussian_adapter import ClampedExpScale, GaussianAdapter
from splatcore.nn import UNet
from splatcore.types import Gaussians

from .config import EncoderDepthSplatCfg
from .depth_predictor import FEATURE_CHANNELS, MultiViewUniMatch
from .errors import DepthSplatError
from .feature_upsampler import ResizeConvFeatureUpsampler
from .gaussian_head import build_gaussian_head, build_gaussian_regressor
from .views import nearest_view_partners

SH_C0 = 0.28209479177387814


class EncoderDepthSplat(nn.Module):
    def __init__(self, cfg: EncoderDepthSplatCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.depth_predictor = MultiViewUniMatch(
            num_scales=cfg.num_scales,
            upsample_factor=cfg.upsample_factor,
            lowest_feature_resolution=cfg.lowest_feature_resolution,
            vit_type=cfg.monodepth_vit_type,
            unet_channels=cfg.depth_unet_channels,
            grid_sample_disable_cudnn=cfg.grid_sample_disable_cudnn,
        )
        if cfg.train_depth_only:
            return
        vit_channels = self.depth_predictor.pretrained.embed_dim
        in_per_scale = [
            (FEATURE_CHANNELS - 32 * s) + FEATURE_CHANNELS // 2**s + vit_channels // 2**s for s in range(cfg.num_scales)
        ]
        factors = [self.depth_predictor.scale_factor(s) for s in range(cfg.num_scales)]
        self.feature_upsampler = ResizeConvFeatureUpsampler(in_per_scale, factors, cfg.feature_upsampler_channels)
        self.gaussian_adapter = GaussianAdapter(
            cfg.gaussian_adapter, scale_activation=ClampedExpScale(cfg.gaussian_adapter.gaussian_scale_max)
        )
        features = cfg.feature_upsampler_channels
        channels = cfg.gaussian_regressor_channels
        self.gaussian_regressor = build_gaussian_regressor(3 + 1 + 1 + features, channels, cfg.color_large_unet)
        self.num_confidence_channels = 0 if cfg.confidence_activation is None else 1  # PM-Loss fork
        self.raw_channels = 1 + self.num_confidence_channels + 2 + self.gaussian_adapter.d_in
        self.gaussian_head = build_gaussian_head(channels + 3 + features + 1, self.raw_channels, features)
        # upstream init: scale and SH rows of the last layer start at zero
        first_scale = 1 + self.num_confidence_channels + 2
        with torch.no_grad():
            last = self.gaussian_head[-1]
            last.weight[first_scale : first_scale + 3].zero_()
            last.bias[first_scale : first_scale + 3].zero_()
            last.weight[first_scale + 7 :].zero_()
            last.bias[first_scale + 7 :].zero_()

    def get_data_shim(self):
        """Centre-crop batches to multiples of shim_patch_size * downscale_factor (16), as upstream."""
        patch = self.cfg.shim_patch_size * self.cfg.downscale_factor

        def data_shim(batch: dict) -> dict:
            return apply_patch_shim(batch, patch_size=patch)

        return data_shim

    def set_num_views(self, num_views: int) -> None:
        """Group ``num_views`` consecutive batch entries in every cross-view attention U-Net (the
        depth regressors and the Gaussian regressor). ``forward`` calls it with the batch's V, so
        the view count can change from one batch to the next."""
        for module in self.modules():
            if isinstance(module, UNet):
                module.set_num_views(num_views)

    def _check_context(self, context: dict[str, Tensor]) -> None:
        missing = [k for k in ("image", "extrinsics", "intrinsics", "near", "far") if k not in context]
        if missing:
            raise DepthSplatError(f"context lacks {missing}; give image, extrinsics, intrinsics, near and far")
        image = context["image"]
        if image.dim() != 5 or image.shape[2] != 3:
            raise DepthSplatError(f"context image must be [B, V, 3, H, W], got {tuple(image.shape)}")
        b, v = image.shape[:2]
        expected = {"extrinsics": (b, v, 4, 4), "intrinsics": (b, v, 3, 3), "near": (b, v), "far": (b, v)}
        for key, shape in expected.items():
            if tuple(context[key].shape) != shape:
                raise DepthSplatError(f"context {key} must have shape {shape}, got {tuple(context[key].shape)}")
        if not bool((context["near"] > 0).all()) or not bool((context["far"] > context["near"]).all()):
            raise DepthSplatError("near and far must satisfy 0 < near < far for every view")

    def forward(
        self,
        context: dict[str, Tensor],
        global_step: int = 0,
        deterministic: bool = False,
        visualization_dump: dict | None = None,
        scene_names: list | None = None,
        intermediates: dict[str, Tensor] | None = None,
    ) -> Gaussians | dict[str, Any]:
        self._check_context(context)
        cfg = self.cfg
        image = context["image"]
        b, v, _, h, w = image.shape
        # everything that depends on the view count is set here, from the batch
        self.set_num_views(v)
        partners = nearest_view_partners(context["extrinsics"], cfg.costvolume_nearest_n_views)
        result = self.depth_predictor(
            image, context["intrinsics"], context["extrinsics"], context["near"], context["far"],
            partners, intermediates=intermediates,
        )
        depth_preds = result.depth_preds
        if cfg.train_depth_only:
            return {"gaussians": None, "depths": torch.cat(depth_preds, dim=0)}
        depth = depth_preds[-1]  # [B, V, H, W]
        features = self.feature_upsampler(result.features_cnn, result.features_mv, result.features_mono)
        match_prob = result.match_probs[-1].max(dim=1, keepdim=True).values
        match_prob = F.interpolate(match_prob, size=(h, w), mode="nearest")
        flat_image = rearrange(image, "b v c h w -> (b v) c h w")
        regressor_in = torch.cat((flat_image, rearrange(depth, "b v h w -> (b v) () h w"), match_prob, features), dim=1)
        regressor_out = self.gaussian_regressor(regressor_in)
        raw = self.gaussian_head(torch.cat((regressor_out, flat_image, features, match_prob), dim=1))
        if intermediates is not None:
            intermediates["inter_gaussian_regressor_out"] = regressor_out
            intermediates["inter_raw_gaussian_head_out"] = raw

        use_all = self.training and cfg.supervise_intermediate_depth
        depths = torch.cat(depth_preds if use_all else depth_preds[-1:], dim=0)  # [B', V, H, W]
        copies = depths.shape[0] // b
        raw = rearrange(raw, "(b v) c h w -> b v (h w) c", b=b, v=v).repeat(copies, 1, 1, 1)
        images = image.repeat(copies, 1, 1, 1, 1)
        extrinsics = context["extrinsics"].repeat(copies, 1, 1, 1)
        intrinsics = context["intrinsics"].repeat(copies, 1, 1, 1)

        opacities = raw[..., 0].sigmoid()
        c = 1 + self.num_confidence_channels  # raw channels: opacity, [confidence], offset (2), adapter
        offsets = fork.pixel_offsets(raw[..., c : c + 2], cfg.offset_mode, cfg.offset_factor)  # PM-Loss fork
        gaussian_raw = raw[..., c + 2 :]
        if cfg.init_sh_input_img:
            d_sh = self.gaussian_adapter.d_sh
            dc = (rearrange(images, "b v c h w -> b v (h w) c") - 0.5) / SH_C0
            sh = gaussian_raw[..., 7:].reshape(*gaussian_raw.shape[:-1], 3, d_sh)
            sh = torch.cat((sh[..., :1] + dc[..., None], sh[..., 1:]), dim=-1)
            gaussian_raw = torch.cat((gaussian_raw[..., :7], sh.flatten(-2)), dim=-1)
        ys, xs = torch.meshgrid(
            (torch.arange(h, device=image.device, dtype=image.dtype) + 0.5) / h,
            (torch.arange(w, device=image.device, dtype=image.dtype) + 0.5) / w,
            indexing="ij",
        )
        pixel_size = torch.tensor((1.0 / w, 1.0 / h), device=image.device, dtype=image.dtype)
        coordinates = torch.stack((xs, ys), dim=-1).reshape(1, 1, h * w, 2) + offsets * pixel_size
        adapted = self.gaussian_adapter(
            extrinsics[:, :, None], intrinsics[:, :, None], coordinates,
            rearrange(depths, "b v h w -> b v (h w)"), opacities, gaussian_raw, (h, w),
        )
        gaussians = Gaussians(
            means=rearrange(adapted.means, "b v r xyz -> b (v r) xyz"),
            covariances=rearrange(adapted.covariances, "b v r i j -> b (v r) i j"),
            harmonics=rearrange(adapted.harmonics, "b v r c d -> b (v r) c d"),
            opacities=rearrange(adapted.opacities, "b v r -> b (v r)"),
        )
        if visualization_dump is not None:
            visualization_dump["depth"] = rearrange(depths, "b v h w -> b v h w () ()")
            visualization_dump["scales"] = rearrange(adapted.scales, "b v r xyz -> b (v r) xyz")
            visualization_dump["rotations"] = rearrange(adapted.rotations, "b v r q -> b (v r) q")
        out: Any = {"gaussians": gaussians, "depths": depths} if cfg.return_depth else gaussians
        if self.num_confidence_channels:  # PM-Loss fork
            fork.add_confidences(out, visualization_dump, raw[..., 1], match_prob, cfg.confidence_activation, copies)
        return out


