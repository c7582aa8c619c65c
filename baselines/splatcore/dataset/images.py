"""Decoding of the encoded image bytes stored in chunks (PIL, no torchvision)."""

from __future__ import annotations

import io

import numpy as np
import torch
from jaxtyping import Float, UInt8
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import DataError, where


class ImageDecodeError(DataError):
    """Encoded image bytes that PIL cannot decode."""


def decode_image(
    data: UInt8[Tensor, " byte"], file: object = None, scene: str | None = None, frame: int | None = None
) -> Float[Tensor, "3 height width"]:
    """Decode JPEG/PNG bytes to an RGB float32 image in [0, 1] (value / 255, like ToTensor)."""
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(
            f"Cannot decode image bytes ({type(error).__name__}: {error}){where(file, scene, frame)}; "
            "the chunk holds a corrupt or unsupported encoded image."
        ) from error
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)


def encode_image(image: Float[Tensor, "3 height width"], format: str = "JPEG", quality: int = 95) -> UInt8[Tensor, " byte"]:
    """Encode a [0, 1] RGB image (rounded to uint8) as JPEG (quality 95 like the RE10K converter,
    but without chroma subsampling, which matters at 64 px) or PNG bytes, returned as the 1-D
    uint8 tensor that chunks store."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    options = {"quality": quality, "subsampling": 0} if format.upper() == "JPEG" else {}
    Image.fromarray(array).save(buffer, format=format, **options)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
