"""The monocular branch's DINOv2 vision transformer (ViT-S/B/L, patch 14)."""

from .dinov2 import DINOV2_SPECS, DinoVisionTransformer, build_dinov2

__all__ = ["DINOV2_SPECS", "DinoVisionTransformer", "build_dinov2"]
