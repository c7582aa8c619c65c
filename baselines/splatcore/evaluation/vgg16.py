"""The convolutional part of VGG16 (Simonyan & Zisserman, configuration "D") as LPIPS uses it.

The module is laid out so that the ``features.*`` entries of torchvision's ImageNet checkpoint
``vgg16-397923af.pth`` load into it unchanged: ``features`` is an ``nn.Sequential`` whose index
``i`` is the ``i``-th layer of the configuration 64, 64, M, 128, 128, M, 256, 256, 256, M, 512,
512, 512, M, 512, 512, 512, M with a ReLU after every 3x3 convolution (padding 1). Hence the
convolutions sit at indices 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 and the max-pools
(2x2, stride 2) at 4, 9, 16, 23, 30. The classifier is not part of this module.

LPIPS reads five activations: relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, i.e. the outputs
of ``features[:4]``, ``features[4:9]``, ``features[9:16]``, ``features[16:23]`` and
``features[23:30]`` applied in sequence (the last max-pool is never used).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

# "M" is a 2x2 max-pool; integers are 3x3 conv output channels (each followed by a ReLU).
VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
# Exclusive end index (in ``features``) of the ReLU whose output LPIPS taps, per tapped layer.
LPIPS_TAP_ENDS: tuple[int, ...] = (4, 9, 16, 23, 30)
LPIPS_TAP_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=False))
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk; ``state_dict()`` keys are ``features.<index>.{weight,bias}``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _build_features()

    def forward(
        self, images: Float[Tensor, "batch 3 height width"]
    ) -> list[Float[Tensor, "batch _ _ _"]]:
        """The five LPIPS taps (relu1_2 ... relu5_3) of already-normalised images.

        Returns tensors of shapes (B, 64, H, W), (B, 128, H/2, W/2), (B, 256, H/4, W/4),
        (B, 512, H/8, W/8), (B, 512, H/16, W/16) (floor division at each pool).
        """
        taps = []
        x = images
        start = 0
        for end in LPIPS_TAP_ENDS:
            for index in range(start, end):
                x = self.features[index](x)
            taps.append(x)
            start = end
        return taps


def expected_conv_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in :class:`VGG16Features`' state dict (from the layout)."""
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    in_channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(item), in_channels, 3, 3)
        shapes[f"features.{index}.bias"] = (int(item),)
        in_channels = int(item)
        index += 2
    return shapes
