"""DepthSplat's DPT head (Depth-Anything style, ``depth_predictor.upsampler``), extended with the
multi-view branch's features: it turns the four DINOv2 intermediate maps into a full-resolution
inverse-depth residual. Written from ../shared/reference/depthsplat-dpt-head.md (prose, no
upstream source); checked against the parity fixtures' ``inter_dpt_residual_depth``.

Constructor: ViT size (widths below), ``upsample_factor`` and ``num_scales`` (the config values;
together they pick the wiring branch). Submodules in registration (= state-dict) order:
    concat_projects  always three 1x1 convs with bias, one per level 0..2 (level 3 never has one);
                     input width = the channels concatenated at that level (table below), output
                     out_channels[l]; a level without extra inputs still has its 1x1 conv
                     (out_channels[l] -> out_channels[l]) applied to the ViT level map alone
    projects         four 1x1 convs with bias, ViT width -> out_channels[l]
    resize_layers    ConvTranspose 4/4 (x4), ConvTranspose 2/2 (x2), Identity, conv3x3 stride 2 (/2)
    scratch          layer{1..4}_rn 3x3 convs without bias -> features; refinenet{1..4} fusion
                     blocks (out_conv, resConfUnit1 (not in refinenet4), resConfUnit2); output_conv

| ViT  | width | features | out_channels          |
| vits | 384   | 32       | 48, 96, 192, 384      |
| vitb | 768   | 48       | 96, 192, 384, 768     |
| vitl | 1024  | 64       | 128, 256, 512, 1024   |

Forward inputs (all [N, C, h, w], N = B*V in (b v) order):
    vit:   the four DINOv2 block outputs, each at 1/8 resolution (every configuration);
    cnn:   the backbone maps fine to coarse: layer1 (64 ch), layer2 (96), conv2(layer3) (128) at
           1/2, 1/4, 1/8 (lowest resolution 8) or 1/2, 1/2, 1/4 (lowest resolution 4);
    mv:    the multi-view maps coarsest first (as the depth predictor keeps them): one map (128 ch,
           1 scale) or [coarse 128 ch, fine x2 64 ch] (2 scales);
    inverse_depth: the last scale's inverse depth [N, 1, H/upsample_factor, W/upsample_factor]
           (not detached).
Per level l: L_l = resize_layers[l](projects[l](vit[l])) at 1/2, 1/4, 1/8, 1/16 (no activation).
Levels 0..2 then concatenate, in this order, and apply concat_projects[l]:

| (upsample, scales) | level 0                                  | level 1                      | level 2                     |
| (4, 2)             | cnn 1/2 (64), L1                         | cnn 96, L2, mv fine, depth   | cnn 128, L3, mv coarse      |
| (2, 2)             | cnn 64, cnn 96, mv fine, depth, L1       | cnn 128, L2, mv coarse       | L3                          |
| (4, 1)             | cnn 64, cnn 96, L1                       | cnn 128, L2, mv, depth       | L3                          |
| other, i.e. (8, 1) | cnn 64, L1                               | cnn 96, L2                   | cnn 128, L3, mv, depth      |

Then layer{l+1}_rn on each level, and the RefineNet fusion (every resize bilinear, align_corners
True, before the block's 1x1 out_conv): path = refinenet4(l4 -> size of l3); refinenet3(path,
l3 -> size of l2); refinenet2(path, l2 -> size of l1); refinenet1(path, l1, x2 -> H x W). A fusion
block adds resConfUnit1(skip) to the path, applies resConfUnit2, resizes, then out_conv; a residual
unit is x + conv2(relu(conv1(relu(x)))) (non-in-place ReLU, the un-activated x is added).
Output head (``scratch.output_conv``): conv3x3 (replicate padding) -> features/2, GELU, conv3x3
(replicate padding) -> 16, GELU, conv1x1 -> 1, the last conv zero-initialised. The result is the
residual [N, 1, H, W] added to the x upsample_factor bilinear upsample of the inverse depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from .errors import DepthSplatError

DPT_CONFIGS: dict[str, dict] = {
    "vits": {"features": 32, "out_channels": (48, 96, 192, 384)},
    "vitb": {"features": 48, "out_channels": (96, 192, 384, 768)},
    "vitl": {"features": 64, "out_channels": (128, 256, 512, 1024)},
}

OUTPUT_HIDDEN = 16  # channels of the output head's second conv (all ViT sizes)
CNN_CHANNELS = {"cnn0": 64, "cnn1": 96, "cnn2": 128}
MV_CHANNELS = {"mv": 128, "mv_coarse": 128, "mv_fine": 64}

# Inputs concatenated (in this order) before concat_projects[level], per (upsample_factor,
# num_scales); "vit" is the projected and resized ViT level map. Any other pair uses FALLBACK.
WIRING: dict[tuple[int, int], tuple[tuple[str, ...], ...]] = {
    (4, 2): (("cnn0", "vit"), ("cnn1", "vit", "mv_fine", "depth"), ("cnn2", "vit", "mv_coarse")),
    (2, 2): (("cnn0", "cnn1", "mv_fine", "depth", "vit"), ("cnn2", "vit", "mv_coarse"), ("vit",)),
    (4, 1): (("cnn0", "cnn1", "vit"), ("cnn2", "vit", "mv", "depth"), ("vit",)),
}
FALLBACK_WIRING: tuple[tuple[str, ...], ...] = (("cnn0", "vit"), ("cnn1", "vit"), ("cnn2", "vit", "mv", "depth"))


def dpt_wiring(upsample_factor: int, num_scales: int) -> tuple[tuple[str, ...], ...]:
    """The concatenation order of levels 0..2 for a configuration (see the module table)."""
    return WIRING.get((upsample_factor, num_scales), FALLBACK_WIRING)


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Float[Tensor, "n c h w"]) -> Float[Tensor, "n c h w"]:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class FeatureFusionBlock(nn.Module):
    """RefineNet block: (path + unit1(skip)) -> unit2 -> bilinear resize -> 1x1 out_conv."""

    def __init__(self, features: int, has_skip: bool) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        if has_skip:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self,
        x: Float[Tensor, "n c h w"],
        skip: Float[Tensor, "n c h w"] | None = None,
        size: tuple[int, int] | None = None,
    ) -> Float[Tensor, "n c h2 w2"]:
        """``size`` None: x2 upsample; otherwise resize to ``size``."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], features: int) -> None:
        super().__init__()
        for index, channels in enumerate(in_channels, start=1):
            setattr(self, f"layer{index}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for index in range(1, 5):
            setattr(self, f"refinenet{index}", FeatureFusionBlock(features, has_skip=index < 4))
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, padding=1, padding_mode="replicate"),
            nn.GELU(),
            nn.Conv2d(features // 2, OUTPUT_HIDDEN, 3, padding=1, padding_mode="replicate"),
            nn.GELU(),
            nn.Conv2d(OUTPUT_HIDDEN, 1, 1),
        )


class DPTHead(nn.Module):
    def __init__(self, vit_type: str, vit_channels: int, upsample_factor: int, num_scales: int) -> None:
        super().__init__()
        if vit_type not in DPT_CONFIGS:
            raise DepthSplatError(f"unknown ViT type {vit_type!r} for the DPT head (vits, vitb or vitl)")
        config = DPT_CONFIGS[vit_type]
        out_channels = config["out_channels"]
        self.num_scales = num_scales
        self.wiring = dpt_wiring(upsample_factor, num_scales)
        widths = {**CNN_CHANNELS, **MV_CHANNELS, "depth": 1}
        self.concat_projects = nn.ModuleList(
            nn.Conv2d(sum(out_channels[level] if name == "vit" else widths[name] for name in names), out_channels[level], 1)
            for level, names in enumerate(self.wiring)
        )
        self.projects = nn.ModuleList(nn.Conv2d(vit_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(out_channels, config["features"])
        nn.init.zeros_(self.scratch.output_conv[-1].weight)
        nn.init.zeros_(self.scratch.output_conv[-1].bias)

    def forward(
        self,
        vit: list[Float[Tensor, "n vit_channel h8 w8"]],
        cnn: list[Float[Tensor, "n _ _ _"]],
        mv: list[Float[Tensor, "n _ _ _"]],
        inverse_depth: Float[Tensor, "n 1 hd wd"],
    ) -> Float[Tensor, "n 1 height width"]:
        """vit: 4 maps at 1/8; cnn: [layer1, layer2, conv2] fine to coarse; mv: coarsest first
        (1 or 2 maps); inverse_depth: the last scale's inverse depth. Returns the inverse-depth
        residual at full resolution (4 x the 1/2 level-0 map, then refinenet1's x2)."""
        if len(vit) != 4 or len(cnn) != 3 or len(mv) != self.num_scales:
            raise DepthSplatError(
                f"the DPT head needs 4 ViT maps, 3 CNN maps and {self.num_scales} multi-view map(s), "
                f"got {len(vit)}, {len(cnn)} and {len(mv)}"
            )
        extras = {"cnn0": cnn[0], "cnn1": cnn[1], "cnn2": cnn[2], "depth": inverse_depth}
        if self.num_scales == 1:
            extras["mv"] = mv[0]
        else:
            extras["mv_coarse"], extras["mv_fine"] = mv[0], mv[-1]
        levels = []
        for level, x in enumerate(vit):
            x = self.resize_layers[level](self.projects[level](x))
            if level < len(self.wiring):
                parts = [x if name == "vit" else extras[name] for name in self.wiring[level]]
                x = self.concat_projects[level](torch.cat(parts, dim=1))
            levels.append(x)
        s = self.scratch
        l1, l2, l3, l4 = s.layer1_rn(levels[0]), s.layer2_rn(levels[1]), s.layer3_rn(levels[2]), s.layer4_rn(levels[3])
        path = s.refinenet4(l4, size=l3.shape[-2:])
        path = s.refinenet3(path, l3, size=l2.shape[-2:])
        path = s.refinenet2(path, l2, size=l1.shape[-2:])
        path = s.refinenet1(path, l1)
        return s.output_conv(path)
