"""ViTDet-style simple feature pyramid: one input map, several output resolutions.

``stages[i]`` maps a [N, C, h, w] map to scale ``scale_factors[i]``:
    1.0  identity (no parameters)
    2.0  ConvTranspose2d(C, C/2, 2, stride 2), GELU, Conv2d(C/2, C/2, 3, padding 1)
    4.0  ConvTranspose2d(C, C/2, 2, s 2), GELU, ConvTranspose2d(C/2, C/4, 2, s 2), GELU, Conv3x3
    0.5  MaxPool2d(2), GELU, Conv3x3 (C channels)
DepthSplat's 2-scale models use scale factors (1, 2) on the multi-view transformer features
(``mv_pyramid``, 128 -> 64) and on the last DINOv2 feature (``mono_pyramid``, C -> C/2).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from .errors import DepthSplatError


class ViTFeaturePyramid(nn.Module):
    def __init__(self, in_channels: int, scale_factors: tuple[float | int, ...]) -> None:
        super().__init__()
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            dim = in_channels
            if scale == 1.0:
                layers: list[nn.Module] = []
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)]
                dim //= 2
            elif scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2),
                ]
                dim //= 4
            elif scale == 0.5:
                layers = [nn.MaxPool2d(2, stride=2)]
            else:
                raise DepthSplatError(f"pyramid scale factors must be 0.5, 1, 2 or 4, got {scale}")
            if layers:
                layers += [nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1)]
            self.stages.append(nn.Sequential(*layers))

    def forward(self, x: Float[Tensor, "batch channel height width"]) -> list[Float[Tensor, "batch _ _ _"]]:
        """One map per scale factor, in the order given (DepthSplat: low to high resolution)."""
        return [stage(x) for stage in self.stages]
