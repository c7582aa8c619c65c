"""UniMatch-style CNN feature extractor (used by MVSplat and DepthSplat).

Architecture (parameter names follow the upstream checkpoints):

    conv1: 7x7, stride 2, no bias -> feature_dims[0], InstanceNorm (no affine), ReLU
    layer1, layer2, layer3: two residual blocks each, widths feature_dims[0..2], strides
        ``layer_strides`` (first block of each layer carries the stride)
    conv2: 1x1 conv (with bias) -> output_dim

Residual block: conv3x3(stride) -> IN -> ReLU -> conv3x3 -> IN -> ReLU, added to the input (through
``downsample`` = 1x1 conv with bias + IN when the stride or width changes), then ReLU. Every
InstanceNorm is ``affine=False`` with no running statistics, so it contributes no state-dict keys.

The output resolution is 1 / (2 * prod(layer_strides)): MVSplat uses strides (1, 2, 1) for 1/4
features, DepthSplat (lowest resolution 1/8) uses (1, 2, 2). ``forward_stages`` also returns the
output of every layer so that a 1/4 (layer2, 96 channels) feature map can be taken alongside.
Input images are expected already normalised (the caller applies the ImageNet statistics).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """Two 3x3 convs with InstanceNorm+ReLU and an identity / 1x1-projected shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm1 = nn.InstanceNorm2d(out_channels)
        self.norm2 = nn.InstanceNorm2d(out_channels)
        self.relu = nn.ReLU()
        if stride == 1 and in_channels == out_channels:
            self.downsample = None
        else:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride), nn.InstanceNorm2d(out_channels)
            )

    def forward(self, x: Float[Tensor, "batch c_in h w"]) -> Float[Tensor, "batch c_out h2 w2"]:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(shortcut + y)


class CNNBackbone(nn.Module):
    """The UniMatch CNN encoder.

    Args:
        output_dim: channels of the final 1x1 projection (``conv2``).
        feature_dims: widths of conv1/layer1, layer2, layer3.
        layer_strides: strides of layer1, layer2, layer3 (conv1 always has stride 2).
    """

    def __init__(
        self,
        output_dim: int = 128,
        feature_dims: tuple[int, int, int] = (64, 96, 128),
        layer_strides: tuple[int, int, int] = (1, 2, 1),
    ):
        super().__init__()
        self.feature_dims = tuple(feature_dims)
        self.layer_strides = tuple(layer_strides)
        self.conv1 = nn.Conv2d(3, feature_dims[0], 7, stride=2, padding=3, bias=False)
        self.norm1 = nn.InstanceNorm2d(feature_dims[0])
        self.relu1 = nn.ReLU()
        widths = [feature_dims[0], *feature_dims]
        for index in range(3):
            layer = nn.Sequential(
                ResidualBlock(widths[index], widths[index + 1], stride=layer_strides[index]),
                ResidualBlock(widths[index + 1], widths[index + 1]),
            )
            self.add_module(f"layer{index + 1}", layer)
        self.conv2 = nn.Conv2d(feature_dims[2], output_dim, 1)

    @property
    def downscale_factor(self) -> int:
        """Input size / output size."""
        return 2 * self.layer_strides[0] * self.layer_strides[1] * self.layer_strides[2]

    def forward_stages(
        self, images: Float[Tensor, "batch 3 height width"]
    ) -> tuple[Float[Tensor, "batch out h w"], list[Tensor]]:
        """Final features and the outputs of layer1, layer2, layer3 (before ``conv2``)."""
        x = self.relu1(self.norm1(self.conv1(images)))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3):
            x = layer(x)
            stages.append(x)
        return self.conv2(x), stages

    def forward(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch out h w"]:
        """Features at 1 / ``downscale_factor`` of the input resolution."""
        return self.forward_stages(images)[0]
