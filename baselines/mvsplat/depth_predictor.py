"""MVSplat's depth predictor (upstream ``DepthPredictorMultiView``): plane-sweep cost volume,
cost-volume U-Net, coarse depth, feature upsampler, depth-refinement U-Net and the raw Gaussian /
disparity heads. Parameter names follow the upstream checkpoints.

Internally everything is in **(v b)** order, as upstream: this matters for B > 1, because the
U-Nets' cross-view attention groups ``num_views`` consecutive entries — with (v b) order those are
the same view of different batch elements. The port keeps that upstream behaviour so that the
official checkpoints behave identically (it is invisible for B = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from splatcore.nn import (
    UNet,
    correlation,
    group_norm,
    inverse_depth_candidates,
    pixel_intrinsics,
    relative_pose,
    warp_with_depth_candidates,
)


def to_vb(x: Tensor) -> Tensor:
    """(B, V, ...) -> (V*B, ...) in (v b) order."""
    return x.transpose(0, 1).flatten(0, 1)


def from_vb(x: Tensor, b: int, v: int) -> Tensor:
    """(V*B, ...) in (v b) order -> (B, V, ...)."""
    return x.reshape(v, b, *x.shape[1:]).transpose(0, 1)


class DepthPredictorMultiView(nn.Module):
    """Transformer features -> per-pixel depth, opacity and raw Gaussian parameters.

    Args:
        feature_channels: transformer/CNN feature width (d_feature).
        upscale_factor: feature-to-image resolution factor (downscale_factor).
        num_depth_candidates: D, planes uniform in inverse depth.
        costvolume_unet_*: width, channel multipliers, attention resolutions of the cost-volume U-Net.
        depth_unet_*: same for the full-resolution refinement U-Net.
        gaussian_raw_channels: raw Gaussian head channels per pixel (2 offset + 7 + 3 d_sh).
        gaussians_per_pixel: 1 in every released config.

    The view count is not a constructor argument: ``forward`` reads V from its input and sets the
    U-Nets' cross-view group size to it on every call (upstream fixes it at construction from
    ``dataset.view_sampler.num_context_views``; the port follows the batch so that the view count
    may change between batches). The cost volume and the transformer read V from the tensors too.
    """

    def __init__(
        self,
        feature_channels: int = 128,
        upscale_factor: int = 4,
        num_depth_candidates: int = 128,
        costvolume_unet_feat_dim: int = 128,
        costvolume_unet_channel_mult: tuple[int, ...] = (1, 1, 1),
        costvolume_unet_attn_res: tuple[int, ...] = (4,),
        depth_unet_feat_dim: int = 32,
        depth_unet_attn_res: tuple[int, ...] = (16,),
        depth_unet_channel_mult: tuple[int, ...] = (1, 1, 1, 1, 1),
        gaussian_raw_channels: int = 84,
        gaussians_per_pixel: int = 1,
    ):
        super().__init__()
        self.num_depth_candidates = num_depth_candidates
        self.upscale_factor = upscale_factor
        self.gaussians_per_pixel = gaussians_per_pixel
        d = num_depth_candidates
        cv_in = d + feature_channels
        cv_dim = costvolume_unet_feat_dim
        self.corr_refine_net = nn.Sequential(
            nn.Conv2d(cv_in, cv_dim, 3, 1, 1),
            group_norm(cv_dim, 8),
            nn.GELU(),
            UNet(
                cv_dim, cv_dim, cv_dim,
                num_res_blocks=1,
                attention_resolutions=tuple(costvolume_unet_attn_res),
                channel_mult=tuple(costvolume_unet_channel_mult),
                num_head_channels=32,
                pre_norm=False,
                num_views=2,  # replaced by the batch's V in forward
            ),
            nn.Conv2d(cv_dim, d, 3, 1, 1),
        )  # fmt: skip
        self.regressor_residual = nn.Conv2d(cv_in, d, 1)
        self.depth_head_lowres = nn.Sequential(
            nn.Conv2d(d, 2 * d, 3, 1, 1), nn.GELU(), nn.Conv2d(2 * d, d, 3, 1, 1)
        )
        self.upsampler = nn.Sequential(
            nn.Conv2d(2 * feature_channels, feature_channels, 3, 1, 1),
            nn.Upsample(scale_factor=upscale_factor, mode="bilinear", align_corners=True),
            nn.GELU(),
        )
        self.proj_feature = nn.Conv2d(feature_channels, depth_unet_feat_dim, 3, 1, 1)
        refine_in = 3 + depth_unet_feat_dim + 1 + 1
        self.refine_unet = nn.Sequential(
            nn.Conv2d(refine_in, depth_unet_feat_dim, 3, 1, 1),
            group_norm(depth_unet_feat_dim, 4),
            nn.GELU(),
            UNet(
                depth_unet_feat_dim, depth_unet_feat_dim, depth_unet_feat_dim,
                num_res_blocks=1,
                attention_resolutions=tuple(depth_unet_attn_res),
                channel_mult=tuple(depth_unet_channel_mult),
                num_head_channels=32,
                pre_norm=False,
                num_views=2,  # replaced by the batch's V in forward
            ),
        )  # fmt: skip
        head_in = depth_unet_feat_dim + 3 + feature_channels
        self.to_gaussians = nn.Sequential(
            nn.Conv2d(head_in, gaussian_raw_channels * 2, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(gaussian_raw_channels * 2, gaussian_raw_channels, 3, 1, 1),
        )
        self.to_disparity = nn.Sequential(
            nn.Conv2d(depth_unet_feat_dim, 2 * depth_unet_feat_dim, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(2 * depth_unet_feat_dim, 2 * gaussians_per_pixel, 3, 1, 1),
        )

    def _set_num_views(self, num_views: int) -> None:
        """The U-Nets' cross-view group size (called by ``forward`` with the batch's V)."""
        self.corr_refine_net[3].set_num_views(num_views)
        self.refine_unet[3].set_num_views(num_views)

    def cost_volume(
        self,
        features: Float[Tensor, "batch view channel h w"],
        intrinsics: Float[Tensor, "batch view 3 3"],
        extrinsics: Float[Tensor, "batch view 4 4"],
        disparities: Float[Tensor, "vb candidate"],
    ) -> Float[Tensor, "vb candidate h w"]:
        """Correlation of each reference view with every other view (view order rotated by
        1..V-1), averaged over the V - 1 other views; (v b) order. Any V >= 2."""
        b, v, _, h, w = features.shape
        reference = to_vb(features)
        k = to_vb(pixel_intrinsics(intrinsics.detach(), h, w))
        depth_planes = (1.0 / disparities)[:, :, None, None].expand(-1, -1, h, w)
        extrinsics = extrinsics.detach()
        volumes = []
        for shift in range(1, v):
            order = [(i + shift) % v for i in range(v)]
            other = to_vb(features[:, order])
            pose = to_vb(relative_pose(extrinsics, extrinsics[:, order]))
            warped = warp_with_depth_candidates(other, k, pose, depth_planes)
            volumes.append(correlation(reference, warped))
        return torch.stack(volumes, dim=0).mean(dim=0)

    def forward(
        self,
        features: Float[Tensor, "batch view channel h w"],
        cnn_features: Float[Tensor, "batch view channel h w"],
        images: Float[Tensor, "batch view 3 height width"],
        intrinsics: Float[Tensor, "batch view 3 3"],
        extrinsics: Float[Tensor, "batch view 4 4"],
        near: Float[Tensor, "batch view"],
        far: Float[Tensor, "batch view"],
        intermediates: dict[str, Tensor] | None = None,
    ) -> tuple[
        Float[Tensor, "batch view pixel"], Float[Tensor, "batch view pixel"], Float[Tensor, "batch view pixel raw"]
    ]:
        """Returns depths (B, V, H*W) (distance used along unit rays), densities (B, V, H*W) and
        raw Gaussian features (B, V, H*W, gaussian_raw_channels). ``intermediates``, when given,
        receives the stage tensors named in the parity README, in (v b) order."""
        b, v, _, h, w = features.shape
        height, width = images.shape[-2:]
        self._set_num_views(v)  # the one place the U-Nets' view count is set: from the batch
        disparities = inverse_depth_candidates(to_vb(near.detach()), to_vb(far.detach()), self.num_depth_candidates)
        volume = self.cost_volume(features, intrinsics, extrinsics, disparities)
        reference = to_vb(features)
        cost_in = torch.cat((volume, reference), dim=1)
        refined = self.corr_refine_net(cost_in) + self.regressor_residual(cost_in)
        logits = self.depth_head_lowres(refined)
        probabilities = F.softmax(logits, dim=1)
        coarse_disparity = (disparities[:, :, None, None] * probabilities).sum(dim=1, keepdim=True)
        pdf_max = probabilities.max(dim=1, keepdim=True).values
        pdf_max = F.interpolate(pdf_max, scale_factor=self.upscale_factor, mode="nearest")
        fullres_disparity = F.interpolate(
            coarse_disparity, scale_factor=self.upscale_factor, mode="bilinear", align_corners=True
        )
        upsampled_features = self.upsampler(torch.cat((reference, to_vb(cnn_features)), dim=1))
        projected = self.proj_feature(upsampled_features)
        images_vb = to_vb(images)
        refine_out = self.refine_unet(torch.cat((images_vb, projected, fullres_disparity, pdf_max), dim=1))
        raw_gaussians = self.to_gaussians(torch.cat((refine_out, images_vb, upsampled_features), dim=1))
        delta_density = self.to_disparity(refine_out)
        delta_disparity, raw_density = delta_density.split(self.gaussians_per_pixel, dim=1)
        inverse_far = to_vb(1.0 / far)[:, None, None, None]
        inverse_near = to_vb(1.0 / near)[:, None, None, None]
        disparity = torch.clamp(fullres_disparity + delta_disparity, inverse_far, inverse_near)
        depths = 1.0 / disparity
        if intermediates is not None:
            intermediates["inter_cost_volume"] = volume
            intermediates["inter_coarse_depth_logits"] = logits
            intermediates["inter_refine_unet_out"] = refine_out
            intermediates["inter_raw_delta_disp_density"] = delta_density
            intermediates["inter_raw_gaussians"] = raw_gaussians
        depths = from_vb(depths[:, 0], b, v).reshape(b, v, height * width)
        densities = from_vb(torch.sigmoid(raw_density[:, 0]), b, v).reshape(b, v, height * width)
        raw = from_vb(raw_gaussians, b, v).reshape(b, v, -1, height * width).transpose(-1, -2)
        return depths, densities, raw
