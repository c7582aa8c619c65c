"""Multi-head self-attention kernel: xformers' memory-efficient attention on CUDA when the
package is installed, PyTorch's ``scaled_dot_product_attention`` otherwise.

Both compute softmax(q k^T / sqrt(d)) v exactly (no dropout at inference); they differ only in
float rounding. xformers is imported lazily, never at module import time, because its CPU wheels
cannot run kernels and importing it on a CPU-only machine prints warnings.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch.nn.functional as F
from jaxtyping import Float
from splatcore.errors import BackendUnavailableError
from torch import Tensor

from ..errors import DepthSplatError


@lru_cache(maxsize=1)
def _xformers_attention():
    """xformers.ops.memory_efficient_attention, or None when xformers is absent or disabled
    (environment variable XFORMERS_DISABLED set, as the DINOv2 reference code honours)."""
    if os.environ.get("XFORMERS_DISABLED"):
        return None
    try:
        from xformers.ops import memory_efficient_attention
    except Exception:  # ImportError, or a broken CUDA build on a CPU machine
        return None
    return memory_efficient_attention


def xformers_available() -> bool:
    return _xformers_attention() is not None


def _kernel_runs_on(q: Tensor) -> bool:
    """Whether xformers' kernels can take ``q``: its memory-efficient operators are CUDA-only
    (0.0.35 has no CPU operator). The CPU tests substitute xformers' own reference
    (``xformers.attn_bias_utils.ref_attention_bmhk``) for the kernel and this check, so that the
    layout and scale of the call below run without a GPU."""
    return q.is_cuda


def multi_head_attention(
    q: Float[Tensor, "batch head token dim"],
    k: Float[Tensor, "batch head token dim"],
    v: Float[Tensor, "batch head token dim"],
    backend: str = "auto",
) -> Float[Tensor, "batch head token dim"]:
    """Scaled dot-product attention with scale 1/sqrt(dim).

    backend: "auto" (xformers if the tensors are on CUDA and xformers is importable, else SDPA),
    "sdpa" or "xformers" (raises when xformers cannot run here).
    """
    if backend not in ("auto", "sdpa", "xformers"):
        raise DepthSplatError(f"attention backend must be 'auto', 'sdpa' or 'xformers', got {backend!r}")
    # only try the import for CUDA tensors: on a CPU-only machine xformers warns when imported
    kernel = _xformers_attention() if (_kernel_runs_on(q) or backend == "xformers") else None
    use_xformers = backend == "xformers" or (backend == "auto" and kernel is not None)
    if use_xformers:
        if kernel is None or not _kernel_runs_on(q):
            raise BackendUnavailableError(
                "attention backend 'xformers' needs the xformers package and CUDA tensors; "
                "install xformers for your CUDA build or use backend='sdpa'"
            )
        # xformers expects (batch, token, head, dim)
        out = kernel(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v)


__all__ = ["multi_head_attention", "xformers_available"]
