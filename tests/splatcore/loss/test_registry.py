"""Losses of the model wrapper: values against float64 references, the LPIPS weights rule, the
registry's extension hook, and the frozen-network helper (nothing reaches a state dict)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from splatcore.loss import (
    LOSSES,
    Loss,
    LossDepth,
    LossDepthCfg,
    LossDepthCfgWrapper,
    LossLpipsCfg,
    LossLpipsCfgWrapper,
    LossMse,
    LossMseCfg,
    LossMseCfgWrapper,
    freeze_as_buffers,
    get_losses,
    loss_cfgs_from_dict,
    register_loss,
    state_dict_free,
)
from splatcore.errors import ConfigError, InputError, MissingWeightsError
from splatcore.types import DecoderOutput


def _batch(rng, b=2, v=3, h=5, w=6):
    target = {
        "image": torch.rand(b, v, 3, h, w, generator=rng),
        "near": torch.full((b, v), 0.5),
        "far": torch.full((b, v), 20.0),
    }
    return {"target": target, "context": {}, "scene": ["a"] * b}


def test_mse_matches_float64_mean(rng):
    batch = _batch(rng)
    pred = torch.rand(batch["target"]["image"].shape, generator=rng)
    loss = LossMse(LossMseCfgWrapper(LossMseCfg(weight=0.7)))
    value = loss(DecoderOutput(color=pred), batch, None, 0)
    reference = 0.7 * ((pred.double() - batch["target"]["image"].double()) ** 2).mean()
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)


def test_mse_clamp_averages_only_small_errors(rng):
    batch = _batch(rng)
    gt = batch["target"]["image"]
    pred = gt.clone()
    pred[0, 0, 0] += 0.9  # squared error 0.81 on one channel plane: ignored with threshold 0.2
    pred[1] += 0.1  # squared error 0.01 everywhere in the second example: kept
    loss = LossMse(LossMseCfgWrapper(LossMseCfg(clamp_large_error=0.2)))
    value = loss(DecoderOutput(color=pred), batch, None, 0)
    error = (pred.double() - gt.double()) ** 2
    kept = error < 0.2
    assert value.item() == pytest.approx((error[kept].sum() / kept.sum()).item(), rel=1e-5)
    assert loss.last_stats["ignored_fraction"] == pytest.approx(1 - kept.double().mean().item())
    unclamped = LossMse(LossMseCfgWrapper(LossMseCfg()))(DecoderOutput(color=pred), batch, None, 0)
    assert unclamped.item() > value.item()


def test_depth_smoothness_matches_loop_reference(rng):
    batch = _batch(rng, b=1, v=1, h=4, w=5)
    depth = torch.rand(1, 1, 4, 5, generator=rng) * 10 + 0.6
    cfg = LossDepthCfg(weight=0.25, sigma_image=2.0)
    value = LossDepth(LossDepthCfgWrapper(cfg))(DecoderOutput(color=torch.zeros(1, 1, 3, 4, 5), depth=depth), batch, None, 0)
    import math

    img = batch["target"]["image"][0, 0].double()
    d = [[(math.log(min(max(float(depth[0, 0, i, j]), 0.5), 20.0)) - math.log(0.5)) / (math.log(20) - math.log(0.5)) for j in range(5)] for i in range(4)]
    dx = [abs(d[i][j + 1] - d[i][j]) * math.exp(-2.0 * float((img[:, i, j + 1] - img[:, i, j]).abs().max())) for i in range(4) for j in range(4)]
    dy = [abs(d[i + 1][j] - d[i][j]) * math.exp(-2.0 * float((img[:, i + 1, j] - img[:, i, j]).abs().max())) for i in range(3) for j in range(5)]
    reference = 0.25 * (sum(dx) / len(dx) + sum(dy) / len(dy))
    assert value.item() == pytest.approx(reference, rel=1e-5)


def test_depth_loss_without_rendered_depth_is_a_clear_error(rng):
    loss = LossDepth(LossDepthCfgWrapper(LossDepthCfg()))
    with pytest.raises(InputError, match="train.depth_mode"):
        loss(DecoderOutput(color=torch.zeros(1, 1, 3, 2, 2)), _batch(rng, 1, 1, 2, 2), None, 0)


@pytest.fixture
def no_lpips_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("PMSPLAT_LPIPS_VGG16", str(tmp_path / "missing_vgg16.pth"))
    monkeypatch.setenv("PMSPLAT_LPIPS_LINEAR", str(tmp_path / "missing_linear.pth"))
    from splatcore.evaluation import lpips_availability

    if lpips_availability()[0]:
        pytest.skip("LPIPS weights are available here")


def test_lpips_missing_weights_is_an_error_by_default(no_lpips_weights):
    with pytest.raises(MissingWeightsError, match="allow_missing_weights"):
        get_losses(loss_cfgs_from_dict([{"lpips": {"weight": 0.05}}]))


def test_lpips_fallback_is_zero_with_one_loud_warning(no_lpips_weights, rng):
    with pytest.warns(RuntimeWarning, match="LPIPS LOSS DISABLED"):
        (loss,) = get_losses(loss_cfgs_from_dict([{"lpips": {"allow_missing_weights": True}}]))
    batch = _batch(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no further warning per step
        value = loss(DecoderOutput(color=torch.rand(batch["target"]["image"].shape)), batch, None, 10)
    assert value.item() == 0.0 and loss.last_stats == {"unavailable": 1.0}
    assert state_dict_free(loss)


def test_lpips_loss_uses_the_metric_network_when_weights_exist(tmp_path, monkeypatch, rng):
    """With (random) weight files in place, the loss equals weight x mean LPIPS of the metric."""
    from splatcore.evaluation import LPIPS
    from splatcore.evaluation.lpips import LPIPSLinearHeads
    from splatcore.evaluation.vgg16 import VGG16Features

    torch.manual_seed(0)
    torch.save(VGG16Features().state_dict(), tmp_path / "vgg.pth")
    heads = LPIPSLinearHeads()
    for p in heads.parameters():
        p.data.uniform_(0, 0.1)
    torch.save(heads.state_dict(), tmp_path / "lin.pth")
    monkeypatch.setenv("PMSPLAT_LPIPS_VGG16", str(tmp_path / "vgg.pth"))
    monkeypatch.setenv("PMSPLAT_LPIPS_LINEAR", str(tmp_path / "lin.pth"))
    (loss,) = get_losses([LossLpipsCfgWrapper(LossLpipsCfg(weight=0.05, apply_after_step=5))])
    assert state_dict_free(loss)
    batch = _batch(rng, b=1, v=2, h=32, w=32)
    pred = torch.rand(batch["target"]["image"].shape, generator=rng)
    assert loss(DecoderOutput(color=pred), batch, None, 4).item() == 0.0  # before apply_after_step
    value = loss(DecoderOutput(color=pred), batch, None, 5)
    reference = LPIPS()(pred[0], batch["target"]["image"][0]).mean() * 0.05
    assert value.item() == pytest.approx(reference.item(), rel=1e-5) and value.item() > 0


@dataclass
class _ConstCfg:
    weight: float = 2.0


@dataclass
class _ConstCfgWrapper:
    const: _ConstCfg


class _ConstLoss(Loss[_ConstCfg, _ConstCfgWrapper]):
    def forward(self, prediction, batch, gaussians, global_step):
        self.last_stats = {"step": float(global_step)}
        return prediction.color.sum() * 0 + self.cfg.weight


def test_register_loss_extends_the_registry_by_name():
    register_loss("const", _ConstCfgWrapper, _ConstLoss)
    try:
        cfgs = loss_cfgs_from_dict({"mse": {"weight": 1.0}, "const": {"weight": 3.0, "unknown_key": 1}})
        losses = get_losses(cfgs)
        assert [loss.name for loss in losses] == ["mse", "const"] and losses[1].cfg.weight == 3.0
    finally:
        LOSSES.pop("const")
    with pytest.raises(ConfigError, match="unknown loss 'const'"):
        loss_cfgs_from_dict([{"const": {}}])


def test_registry_rejects_bad_entries():
    with pytest.raises(ConfigError, match="one field named 'other'"):
        register_loss("other", _ConstCfgWrapper, _ConstLoss)
    with pytest.raises(ConfigError, match="twice"):
        loss_cfgs_from_dict([{"mse": {}}, {"mse": {}}])
    with pytest.raises(ConfigError, match="clamp_large_error"):
        loss_cfgs_from_dict([{"mse": {"clamp_large_error": -1}}])


def test_freeze_as_buffers_hides_parameters_but_follows_dtype():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(5, 3)
    before = net.eval()(x)
    freeze_as_buffers(net)
    assert state_dict_free(net) and list(net.parameters()) == []
    assert torch.equal(net(x), before)
    assert net.double()[0].weight.dtype == torch.float64
