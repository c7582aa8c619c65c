"""The frozen teacher's reduced-precision path (``inference_dtype`` + ``autocast_context``) on CPU:
a small randomly initialised network standing in for VGGT's heads runs under bfloat16 / float16
autocast through the real VGGT adapter and matches its own float32 run within the stated
tolerance, and the autocast is really active (the outputs are not bit-identical to float32)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pmsplat.teachers.frozen import autocast_context, inference_dtype
from pmsplat.teachers.vggt import VGGTTeacher, VGGTTeacherCfg

#: max |x_low - x_32| / max |x_32| allowed; bfloat16 keeps 8 mantissa bits (2^-8 = 3.9e-3 per
#: rounding), float16 11 (4.9e-4); a 3-layer MLP accumulates a few roundings.
TOLERANCE = {"bfloat16": 3e-2, "float16": 4e-3}


class PixelMLP(nn.Module):
    """Images (B, S, 3, H, W) -> VGGT's point-head outputs: world_points (B, S, H, W, 3) and
    world_points_conf (B, S, H, W), through Linear layers (which CPU autocast runs in low precision)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 4))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(images.permute(0, 1, 3, 4, 2))
        return {"world_points": out[..., :3], "world_points_conf": 1 + out[..., 3].exp()}


def test_inference_dtype_choices_on_cpu():
    cpu = torch.device("cpu")
    assert inference_dtype(cpu) == torch.float32  # auto: float32 on CPU, as the official code
    assert inference_dtype(cpu, "bfloat16") == torch.bfloat16 and inference_dtype(cpu, "float16") == torch.float16


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_teacher_matches_float32(dtype):
    torch.manual_seed(0)
    model = PixelMLP()
    images = torch.rand(1, 2, 3, 14, 28)
    reference = VGGTTeacher(VGGTTeacherCfg(device="cpu", dtype="float32"), model=model)(images)
    low = VGGTTeacher(VGGTTeacherCfg(device="cpu", dtype=dtype), model=model)(images)
    assert low.points.dtype == torch.float32 and low.confidence.dtype == torch.float32  # cast back for the loss
    for got, want in ((low.points, reference.points), (low.confidence, reference.confidence)):
        error = float((got - want).abs().max() / want.abs().max())
        assert error <= TOLERANCE[dtype], (dtype, error)
        assert error > 0, "autocast did not change anything: the low-precision path is not active"


def test_autocast_context_is_a_no_op_for_float32():
    layer = nn.Linear(4, 4)
    x = torch.rand(2, 4)
    with autocast_context(torch.device("cpu"), torch.float32):
        assert layer(x).dtype == torch.float32
    with autocast_context(torch.device("cpu"), torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
