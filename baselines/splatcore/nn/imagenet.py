"""ImageNet normalisation applied inside the encoders (inputs are images in [0, 1])."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_imagenet(images: Float[Tensor, "*batch 3 height width"]) -> Float[Tensor, "*batch 3 height width"]:
    """(image - mean) / std per colour channel."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).reshape(3, 1, 1)
    return (images - mean) / std
