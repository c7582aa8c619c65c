"""MVSplat's multi-view backbone: UniMatch CNN (1/4 resolution) + 6-layer multi-view Swin
transformer with a per-window sine position encoding. Module names: ``backbone`` (CNN) and
``transformer``, as in the upstream ``BackboneMultiview``.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from splatcore.nn import CNNBackbone, MultiViewTransformer, add_window_position_encoding, normalize_imagenet

from .errors import MVSplatError

CNN_LAYER_STRIDES = {4: (1, 2, 1), 8: (1, 2, 2)}


class BackboneMultiview(nn.Module):
    """Images in [0, 1] -> (transformer features, CNN features), both (B, V, C, H/s, W/s)."""

    def __init__(self, feature_channels: int = 128, downscale_factor: int = 4, num_transformer_layers: int = 6):
        super().__init__()
        if downscale_factor not in CNN_LAYER_STRIDES:
            raise MVSplatError(
                f"downscale_factor must be one of {sorted(CNN_LAYER_STRIDES)}, got {downscale_factor}."
            )
        self.feature_channels = feature_channels
        self.backbone = CNNBackbone(
            output_dim=feature_channels, layer_strides=CNN_LAYER_STRIDES[downscale_factor]
        )
        self.transformer = MultiViewTransformer(num_transformer_layers, d_model=feature_channels, ffn_expansion=4)

    def forward(
        self, images: Float[Tensor, "batch view 3 height width"], attn_splits: int
    ) -> tuple[Float[Tensor, "batch view channel h w"], Float[Tensor, "batch view channel h w"]]:
        b, v = images.shape[:2]
        cnn = self.backbone(normalize_imagenet(images.flatten(0, 1)))  # ((b v), c, h, w)
        cnn_features = cnn.reshape(b, v, *cnn.shape[1:])
        with_position = add_window_position_encoding(cnn, attn_splits).reshape(b, v, *cnn.shape[1:])
        return self.transformer(with_position, attn_splits), cnn_features
