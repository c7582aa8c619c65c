"""A compact DINOv2 vision transformer (patch 14, class token, no registers) with the upstream
state-dict names, as DepthSplat holds it under ``depth_predictor.pretrained.*``.

Layout (ViT-S/B/L = width 384/768/1024, depth 12/12/24, heads 6/12/16, MLP ratio 4):
    patch_embed.proj  Conv2d(3, C, 14, stride 14)
    cls_token         [1, 1, C]
    pos_embed         [1, 1 + 37*37, C]  (learned for a 518x518 input)
    blocks.N          pre-norm: x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x)))
                      attn.qkv Linear(C, 3C), attn.proj Linear(C, C), ls*.gamma [C],
                      mlp.fc1 Linear(C, 4C), GELU (exact), mlp.fc2 Linear(4C, C)
    norm              final LayerNorm
All LayerNorms use eps 1e-6. There is no ``mask_token`` (DepthSplat deletes it, so the official
checkpoints do not hold it).

Position embeddings for other grid sizes follow DINOv2's rule exactly: bicubic interpolation of
the 37x37 grid with ``scale_factor = ((h0 + 0.1) / 37, (w0 + 0.1) / 37)`` (h0, w0 = patch rows,
columns), antialias off, computed in float32; the stored table is used unchanged only when the
grid is exactly 37x37. A size-based resize gives clearly different values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import DepthSplatError
from .attention import multi_head_attention

PATCH_SIZE = 14
POS_EMBED_GRID = 37  # 518 / 14
POS_EMBED_OFFSET = 0.1


@dataclass(frozen=True)
class DinoV2Spec:
    embed_dim: int
    depth: int
    num_heads: int
    intermediate_blocks: tuple[int, ...]  # blocks whose outputs DepthSplat uses


DINOV2_SPECS: dict[str, DinoV2Spec] = {
    "vits": DinoV2Spec(384, 12, 6, (2, 5, 8, 11)),
    "vitb": DinoV2Spec(768, 12, 12, (2, 5, 8, 11)),
    "vitl": DinoV2Spec(1024, 24, 16, (4, 11, 17, 23)),
}


class PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch token dim"]:
        return self.proj(x).flatten(2).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.backend = "auto"

    def forward(self, x: Float[Tensor, "batch token dim"]) -> Float[Tensor, "batch token dim"]:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, head, token, dim)
        out = multi_head_attention(q, k, v, backend=self.backend)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: Float[Tensor, "batch token dim"]) -> Float[Tensor, "batch token dim"]:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT with patch 14 and a 37x37 learned position grid (see the module docstring)."""

    def __init__(self, spec: DinoV2Spec) -> None:
        super().__init__()
        self.spec = spec
        dim = spec.embed_dim
        self.embed_dim = dim
        self.patch_size = PATCH_SIZE
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_EMBED_GRID**2, dim))
        self.blocks = nn.ModuleList(Block(dim, spec.num_heads) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def set_attention_backend(self, backend: str) -> None:
        """"auto" (xformers on CUDA when installed, else SDPA), "sdpa" or "xformers"."""
        for block in self.blocks:
            block.attn.backend = backend

    def interpolated_pos_embed(self, rows: int, cols: int) -> Float[Tensor, "1 token dim"]:
        """Position table (class entry first) for a rows x cols patch grid, DINOv2's rule."""
        if rows == POS_EMBED_GRID and cols == POS_EMBED_GRID:
            return self.pos_embed
        table = self.pos_embed.float()
        grid = table[:, 1:].reshape(1, POS_EMBED_GRID, POS_EMBED_GRID, -1).permute(0, 3, 1, 2)
        scale = ((rows + POS_EMBED_OFFSET) / POS_EMBED_GRID, (cols + POS_EMBED_OFFSET) / POS_EMBED_GRID)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        if grid.shape[-2:] != (rows, cols):  # float rounding of the scale factor; never seen
            raise RuntimeError(f"position grid resized to {tuple(grid.shape[-2:])}, expected {(rows, cols)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat((table[:, :1], grid), dim=1).to(self.pos_embed.dtype)

    def tokens(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch token dim"]:
        b, _, h, w = images.shape
        if h % PATCH_SIZE or w % PATCH_SIZE or h == 0 or w == 0:
            raise DepthSplatError(
                f"DINOv2 input must be a positive multiple of {PATCH_SIZE} in height and width, "
                f"got {h}x{w}; resize the images first"
            )
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        return x + self.interpolated_pos_embed(h // PATCH_SIZE, w // PATCH_SIZE)

    def get_intermediate_layers(
        self, images: Float[Tensor, "batch 3 height width"], block_indices: tuple[int, ...] | None = None
    ) -> list[Float[Tensor, "batch dim rows cols"]]:
        """Outputs of the given blocks (default: the spec's DepthSplat blocks), each through the
        final LayerNorm, class token dropped, reshaped to the patch grid (channels first)."""
        indices = self.spec.intermediate_blocks if block_indices is None else tuple(block_indices)
        if any(not 0 <= i < len(self.blocks) for i in indices):
            raise DepthSplatError(f"block indices {indices} out of range for {len(self.blocks)} blocks")
        rows, cols = images.shape[-2] // PATCH_SIZE, images.shape[-1] // PATCH_SIZE
        x = self.tokens(images)
        outputs = []
        for index, block in enumerate(self.blocks[: max(indices) + 1]):
            x = block(x)
            if index in indices:
                out = self.norm(x)[:, 1:]
                outputs.append(out.reshape(out.shape[0], rows, cols, -1).permute(0, 3, 1, 2).contiguous())
        return outputs

    def forward(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch token dim"]:
        """All tokens (class token first) after the final LayerNorm."""
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def build_dinov2(vit_type: str) -> DinoVisionTransformer:
    if vit_type not in DINOV2_SPECS:
        raise DepthSplatError(
            f"monodepth_vit_type must be one of {sorted(DINOV2_SPECS)}, got {vit_type!r}"
        )
    return DinoVisionTransformer(DINOV2_SPECS[vit_type])


