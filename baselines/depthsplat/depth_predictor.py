"""DepthSplat's multi-view depth branch (``MultiViewUniMatch``, held as ``depth_predictor``):
UniMatch CNN + multi-view Swin transformer, DINOv2 monocular features, per-scale plane-sweep cost
volumes with U-Net regressors and depth heads, and the DPT head's full-resolution residual.

Layout, per batch of B scenes with V views (all maps in (b v) order):
1. images are ImageNet-normalised once; the CNN (``backbone``) gives [1/2: 64, mid: 96,
   lowest: 128] channel maps (lowest = 1/lowest_feature_resolution);
2. ``transformer`` (6 layers, 2x2 windows, sine position per window) at the lowest resolution,
   each view cross-attending to its nearest views (``partners``); for 2 scales ``mv_pyramid``
   adds a x2 level (64 channels);
3. ``pretrained`` (DINOv2) on the normalised images bilinearly resized (align_corners=True) to
   multiples of 14; blocks' outputs (2, 5, 8, 11 / ViT-L 4, 11, 17, 23) resized to 1/8; the last
   is the mono feature (x2 when lowest is 1/4), ``mono_pyramid`` adds a x2 level (C/2);
4. scale i (0 coarse): cost volume over D_i candidates (D_0 = 128 uniform in inverse depth over
   [1/far, 1/near]; D_1 = 32 around the x2-upsampled, detached scale-0 inverse depth with interval
   (1/near - 1/far)/127/2, from -16 to +15 intervals, the range clamped to [1/far, 1/near]),
   ``regressor[i]`` + ``regressor_residual[i]`` on concat(cost volume, CNN, MV, mono),
   ``depth_head[i]`` -> logits, softmax -> match probabilities, inverse depth = sum p * candidate;
5. last scale: ``upsampler`` (DPT head) residual + bilinear upsample (align_corners=True) of the
   inverse depth, clamped to [1/far, 1/near]; depth = 1 / inverse depth.
In training every scale's inverse depth (bilinearly upsampled to full resolution) is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from splatcore.nn import (
    CNNBackbone,
    MultiViewTransformer,
    UNet,
    add_window_position_encoding,
    correlation,
    group_norm,
    normalize_imagenet,
    relative_pose,
    warp_with_depth_candidates,
)

from .dpt_head import DPTHead
from .errors import DepthSplatError
from .pyramid import ViTFeaturePyramid
from .vit import build_dinov2

FEATURE_CHANNELS = 128
CNN_DIMS = (64, 96, 128)
ATTN_SPLITS = 2
VIT_PATCH = 14


@dataclass
class DepthPredictorOutput:
    """depth_preds: metric depths [B, V, H, W], intermediates (training only) first, final last.
    match_probs: per scale [BV, D_i, h_i, w_i]. features_*: per scale [BV, C, h_i, w_i], coarsest
    first (the Gaussian branch's inputs)."""

    depth_preds: list[Tensor]
    match_probs: list[Tensor]
    features_cnn: list[Tensor]
    features_mv: list[Tensor]
    features_mono: list[Tensor]


def _regressor(in_channels: int, channels: int, num_levels: int, attention_resolution: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        group_norm(channels),
        nn.GELU(),
        UNet(
            channels, channels, channels, num_res_blocks=1, attention_resolutions=(attention_resolution,),
            channel_mult=(1,) * num_levels, num_head_channels=32, pre_norm=True, num_views=2,
        ),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


def _depth_head(channels: int, candidates: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 2 * channels, 3, padding=1, padding_mode="replicate"),
        nn.GELU(),
        nn.Conv2d(2 * channels, candidates, 3, padding=1, padding_mode="replicate"),
    )


class MultiViewUniMatch(nn.Module):
    def __init__(
        self,
        num_scales: int = 1,
        upsample_factor: int = 4,
        lowest_feature_resolution: int = 4,
        vit_type: str = "vits",
        unet_channels: int = 128,
        num_depth_candidates: int = 128,
        grid_sample_disable_cudnn: bool = False,
    ) -> None:
        super().__init__()
        self.num_scales = num_scales
        self.upsample_factor = upsample_factor
        self.lowest_feature_resolution = lowest_feature_resolution
        self.vit_type = vit_type
        self.num_depth_candidates = num_depth_candidates
        self.grid_sample_disable_cudnn = grid_sample_disable_cudnn
        # layer strides: lowest 1/8 -> maps at 1/2, 1/4, 1/8; lowest 1/4 -> 1/2, 1/2, 1/4 (so that
        # a 2-scale model finds its 96-channel map at 1/2; checked by the small-preset fixture)
        strides = (1, 2, 2) if lowest_feature_resolution == 8 else (1, 1, 2)
        self.backbone = CNNBackbone(FEATURE_CHANNELS, CNN_DIMS, strides)
        self.transformer = MultiViewTransformer(6, FEATURE_CHANNELS, 4)
        if num_scales > 1:
            self.mv_pyramid = ViTFeaturePyramid(FEATURE_CHANNELS, (1, 2))
        self.pretrained = build_dinov2(vit_type)
        vit_channels = self.pretrained.embed_dim
        if num_scales > 1:
            self.mono_pyramid = ViTFeaturePyramid(vit_channels, (1, 2))
        self.regressor = nn.ModuleList()
        self.regressor_residual = nn.ModuleList()
        self.depth_head = nn.ModuleList()
        for scale in range(num_scales):
            candidates = num_depth_candidates // 4**scale
            channels = unet_channels // 2**scale
            in_channels = candidates + CNN_DIMS[2 - scale] + FEATURE_CHANNELS // 2**scale + vit_channels // 2**scale
            self.regressor.append(_regressor(in_channels, channels, 3 + scale, 4 * 2**scale))
            self.regressor_residual.append(nn.Conv2d(in_channels, channels, 1))
            self.depth_head.append(_depth_head(channels, candidates))
        self.upsampler = DPTHead(vit_type, vit_channels, upsample_factor, num_scales)

    def scale_factor(self, scale: int) -> int:
        """Downsampling factor of scale ``scale`` (0 = coarsest)."""
        return self.upsample_factor * 2 ** (self.num_scales - 1 - scale)

    # -- stages ---------------------------------------------------------------------------------

    def cnn_features(self, images: Float[Tensor, "bv 3 h w"]) -> list[Tensor]:
        """[layer1, layer2, conv2(layer3)] maps (fine to coarse)."""
        lowest, stages = self.backbone.forward_stages(images)
        return [stages[0], stages[1], lowest]

    def mono_features(self, images: Float[Tensor, "bv 3 h w"]) -> list[Tensor]:
        """DINOv2 intermediate maps resized (bilinear, align_corners=True) to 1/8."""
        h, w = images.shape[-2:]
        resized = F.interpolate(
            images, (h // VIT_PATCH * VIT_PATCH, w // VIT_PATCH * VIT_PATCH), mode="bilinear", align_corners=True
        )
        return [
            F.interpolate(x, (h // 8, w // 8), mode="bilinear", align_corners=True)
            for x in self.pretrained.get_intermediate_layers(resized)
        ]

    def cost_volume(
        self,
        features: Float[Tensor, "b v c h w"],
        intrinsics: Float[Tensor, "b v 3 3"],
        extrinsics: Float[Tensor, "b v 4 4"],
        inverse_depth_candidates: Float[Tensor, "bv d h w"],
        partners: Tensor,
    ) -> Float[Tensor, "bv d h w"]:
        """Correlation with each partner view warped at every candidate, averaged over partners.
        ``intrinsics`` in pixel units of the feature map; partners [B, V, P] view indices."""
        b, v = features.shape[:2]
        candidates = rearrange(inverse_depth_candidates, "(b v) d h w -> b v d h w", b=b, v=v)
        batch = torch.arange(b, device=features.device)
        volumes = []
        for view in range(v):
            per_partner = []
            for slot in range(partners.shape[-1]):
                other = partners[:, view, slot].to(features.device)
                pose = relative_pose(extrinsics[:, view], extrinsics[batch, other])
                warped = self._warp(features[batch, other], intrinsics[:, view], pose, 1.0 / candidates[:, view])
                per_partner.append(correlation(features[:, view], warped))
            volumes.append(torch.stack(per_partner, dim=0).mean(dim=0))
        return rearrange(torch.stack(volumes, dim=1), "b v d h w -> (b v) d h w")

    def _transform(self, features: Float[Tensor, "b v c h w"], partners: Tensor) -> Float[Tensor, "b v c h w"]:
        """Multi-view transformer; batch elements with different partner lists run separately."""
        if bool((partners == partners[:1]).all()):
            return self.transformer(features, ATTN_SPLITS, partners[0].tolist())
        return torch.cat(
            [self.transformer(features[i : i + 1], ATTN_SPLITS, partners[i].tolist()) for i in range(len(features))]
        )

    def _warp(self, features: Tensor, intrinsics: Tensor, pose: Tensor, depths: Tensor) -> Tensor:
        if self.grid_sample_disable_cudnn and features.is_cuda:
            with torch.backends.cudnn.flags(enabled=False):
                return warp_with_depth_candidates(features, intrinsics, pose, depths)
        return warp_with_depth_candidates(features, intrinsics, pose, depths)

    # -- forward --------------------------------------------------------------------------------

    def forward(
        self,
        images: Float[Tensor, "b v 3 h w"],
        intrinsics: Float[Tensor, "b v 3 3"],
        extrinsics: Float[Tensor, "b v 4 4"],
        near: Float[Tensor, "b v"],
        far: Float[Tensor, "b v"],
        partners: Tensor,
        intermediates: dict[str, Tensor] | None = None,
    ) -> DepthPredictorOutput:
        """images in [0, 1]; normalised intrinsics; camera-to-world extrinsics; ``partners``
        [B, V, P] (the views each view attends to / builds its cost volume with, nearest first).
        ``intermediates``, when given, receives the parity-fixture stage tensors (``inter_*``)."""
        b, v, _, h, w = images.shape
        multiple = 4 * self.lowest_feature_resolution
        if h % multiple or w % multiple:
            raise DepthSplatError(
                f"DepthSplat with lowest_feature_resolution={self.lowest_feature_resolution} needs image "
                f"height and width divisible by {multiple}, got {h}x{w}; crop or resize the views "
                "(the encoder's data shim crops to multiples of 16 only, as upstream)"
            )
        capture = intermediates if intermediates is not None else {}
        flat = normalize_imagenet(rearrange(images, "b v c h w -> (b v) c h w"))
        min_inv = rearrange(1.0 / far, "b v -> (b v) () () ()")
        max_inv = rearrange(1.0 / near, "b v -> (b v) () () ()")

        # CNN + multi-view transformer
        cnn_fine_to_coarse = self.cnn_features(flat)
        capture["inter_cnn_features_s0"] = cnn_fine_to_coarse[2]
        capture["inter_cnn_features_s1"] = cnn_fine_to_coarse[1]
        lowest = add_window_position_encoding(cnn_fine_to_coarse[2], ATTN_SPLITS)
        mv = self._transform(rearrange(lowest, "(b v) c h w -> b v c h w", b=b, v=v), partners)
        mv = rearrange(mv, "b v c h w -> (b v) c h w")
        capture["inter_mv_transformer_features"] = mv
        features_mv = self.mv_pyramid(mv) if self.num_scales > 1 else [mv]

        # monocular branch
        mono_all = self.mono_features(flat)
        for index, feature in enumerate(mono_all):
            capture[f"inter_mono_intermediate_l{index}"] = feature
        mono = mono_all[-1]
        if self.lowest_feature_resolution == 4:
            mono = F.interpolate(mono, scale_factor=2, mode="bilinear", align_corners=True)
        features_mono = self.mono_pyramid(mono) if self.num_scales > 1 else [mono]

        features_cnn = [cnn_fine_to_coarse[2 - scale] for scale in range(self.num_scales)]
        inverse_depth_preds: list[Tensor] = []
        match_probs: list[Tensor] = []
        inverse_depth: Tensor | None = None
        for scale in range(self.num_scales):
            factor = self.scale_factor(scale)
            k = intrinsics.clone()
            k[:, :, 0] = k[:, :, 0] * w
            k[:, :, 1] = k[:, :, 1] * h
            k[:, :, :2] = k[:, :, :2] / factor
            fh, fw = features_mv[scale].shape[-2:]
            candidates_count = self.num_depth_candidates // 4**scale
            if scale == 0:
                steps = torch.linspace(0, 1, candidates_count, device=images.device, dtype=images.dtype)
                candidates = min_inv + steps.view(1, -1, 1, 1) * (max_inv - min_inv)
                candidates = candidates.expand(-1, -1, fh, fw)
            else:
                assert inverse_depth is not None
                inverse_depth = F.interpolate(inverse_depth, scale_factor=2, mode="bilinear", align_corners=True).detach()
                interval = (max_inv - min_inv) / (self.num_depth_candidates - 1) / 2
                low = torch.maximum(inverse_depth - interval * (candidates_count // 2), min_inv)
                high = torch.minimum(inverse_depth + interval * (candidates_count // 2 - 1), max_inv)
                steps = torch.linspace(0, 1, candidates_count, device=images.device, dtype=images.dtype)
                candidates = low + steps.view(1, -1, 1, 1) * (high - low)
            volume = self.cost_volume(
                rearrange(features_mv[scale], "(b v) c h w -> b v c h w", b=b, v=v), k, extrinsics, candidates, partners
            )
            capture[f"inter_cost_volume_s{scale}"] = volume
            regressor_in = torch.cat((volume, features_cnn[scale], features_mv[scale], features_mono[scale]), dim=1)
            out = self.regressor[scale](regressor_in) + self.regressor_residual[scale](regressor_in)
            probabilities = torch.softmax(self.depth_head[scale](out), dim=1)
            capture[f"inter_match_prob_s{scale}"] = probabilities
            match_probs.append(probabilities)
            inverse_depth = (probabilities * candidates).sum(dim=1, keepdim=True)
            if self.training:
                inverse_depth_preds.append(
                    F.interpolate(inverse_depth, scale_factor=factor, mode="bilinear", align_corners=True)
                )
        assert inverse_depth is not None
        residual = self.upsampler(mono_all, cnn_fine_to_coarse, features_mv, inverse_depth)
        capture["inter_dpt_residual_depth"] = residual
        upsampled = F.interpolate(inverse_depth, scale_factor=self.upsample_factor, mode="bilinear", align_corners=True)
        final = torch.clamp(upsampled + residual, min=min_inv, max=max_inv)
        inverse_depth_preds.append(final)
        depth_preds = [rearrange(1.0 / d.squeeze(1), "(b v) h w -> b v h w", b=b, v=v) for d in inverse_depth_preds]
        return DepthPredictorOutput(depth_preds, match_probs, features_cnn, features_mv, features_mono)
