"""Optimizer and LR schedule of the wrapper: DepthSplat's two parameter groups on the real
parameter names, and the OneCycle / LinearLR schedules against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from splatcore.model import OptimizerCfg, build_optimizer, parameter_groups
from splatcore.errors import ConfigError


def test_depthsplat_groups_split_the_vit_by_name():
    from depthsplat import EncoderDepthSplat
    from depthsplat.config import PRESETS

    with torch.device("meta"):  # real module names and shapes, no weight initialisation
        encoder = EncoderDepthSplat(PRESETS["cpu_tiny"]())
    cfg = OptimizerCfg(name="adamw", lr=2e-4, lr_monodepth=2e-6, weight_decay=0.01)
    groups = parameter_groups(encoder, cfg)
    assert [g["lr"] for g in groups] == [2e-4, 2e-6]
    names = dict(encoder.named_parameters())
    assert set(groups[1]["names"]) == {n for n in names if "pretrained" in n}
    assert all(n.startswith("depth_predictor.pretrained.") for n in groups[1]["names"])
    assert set(groups[0]["names"]).isdisjoint(groups[1]["names"])
    assert set(groups[0]["names"]) | set(groups[1]["names"]) == set(names)
    assert sum(len(g["params"]) for g in groups) == len(names)


def _step_lrs(module, cfg, max_steps, steps):
    config = build_optimizer(module, cfg, max_steps)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return optimizer, lrs


def _one_cycle(step: int, max_lr: float, total: int) -> float:
    """OneCycle with pct_start 0.01, cos annealing, div 25, final div 1e4 (PyTorch's definition:
    phase ends at pct*total - 1 and total - 1)."""
    initial, final = max_lr / 25, max_lr / 25 / 1e4
    warm_end = 0.01 * total - 1
    if step <= warm_end:
        t, start, end = step / warm_end, initial, max_lr
    else:
        t, start, end = (step - warm_end) / (total - 1 - warm_end), max_lr, final
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


class _Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 2)
        self.pretrained = nn.Linear(2, 2)


def test_one_cycle_matches_the_closed_form_per_group():
    max_steps = 390  # total 400: warm-up over 3 steps, cosine to max_lr / 2.5e5
    cfg = OptimizerCfg(name="adamw", lr=2e-4, lr_monodepth=2e-6, weight_decay=0.01)
    optimizer, lrs = _step_lrs(_Named(), cfg, max_steps, max_steps + 10)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01
    for step in (0, 1, 3, 4, 100, 250, 399):
        for group, max_lr in enumerate((2e-4, 2e-6)):
            assert lrs[step][group] == pytest.approx(_one_cycle(step, max_lr, max_steps + 10), rel=1e-6), (step, group)
    assert lrs[0][0] == pytest.approx(2e-4 / 25) and lrs[-1][0] == pytest.approx(2e-4 / 2.5e5, rel=1e-2)


def test_adam_linear_warm_up():
    cfg = OptimizerCfg(name="adam", lr=1e-3, warm_up_steps=10, cosine_lr=False)
    optimizer, lrs = _step_lrs(nn.Linear(2, 2), cfg, None, 15)
    assert type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 1
    for step in range(15):
        expected = 1e-3 * (0.1 + 0.9 * min(step, 10) / 10)
        assert lrs[step][0] == pytest.approx(expected, rel=1e-6)


def test_one_cycle_needs_max_steps():
    with pytest.raises(ConfigError, match="max_steps"):
        build_optimizer(nn.Linear(2, 2), OptimizerCfg(), -1)
