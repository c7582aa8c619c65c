"""The PM-Loss term injected into the baselines' loss registry (`loss=[..., pm]`).

Checks: registration through the patched registry; the term feeds PM-Loss exactly the final
Gaussians of the context views (DepthSplat stacks intermediate sets in front); apply_after_step;
the teacher never reaches a state dict, the parameters or the optimizer; config composition.
"""

from __future__ import annotations

import pytest
import torch
from splatcore.errors import ConfigError
from splatcore.loss import LOSSES, get_losses, loss_cfgs_from_dict
from splatcore.types import DecoderOutput, Gaussians

from pmsplat.adapter import LossPm, LossPmCfg, LossPmCfgWrapper
from pmsplat.loss import pm_loss
from pmsplat.teachers.base import TeacherOutput


class ParamTeacher(torch.nn.Module):
    """A teacher with real parameters: serves given points through a learnable-looking scale."""

    patch_size = 1

    def __init__(self, points: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.register_buffer("points", points)

    def forward(self, images, context=None):
        return TeacherOutput(self.points * self.weight)


def _problem(batch=2, views=2, height=4, width=5, stacked=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = views * height * width
    means = torch.randn(batch * stacked, n, 3, generator=g, dtype=torch.float64)
    gaussians = Gaussians(
        means=means.requires_grad_(True),
        covariances=torch.eye(3, dtype=torch.float64).expand(batch * stacked, n, 3, 3),
        harmonics=torch.zeros(batch * stacked, n, 3, 4, dtype=torch.float64),
        opacities=torch.ones(batch * stacked, n, dtype=torch.float64),
    )
    teacher_points = torch.randn(batch, views, height, width, 3, generator=g, dtype=torch.float64)
    batch_dict = {
        "context": {"image": torch.rand(batch, views, 3, height, width, generator=g, dtype=torch.float64),
                    "index": torch.arange(views).repeat(batch, 1)},
        "target": {"image": torch.rand(batch, 1, 3, height, width, generator=g, dtype=torch.float64)},
        "scene": [f"s{i}" for i in range(batch)],
    }
    prediction = DecoderOutput(color=torch.zeros(batch, 1, 3, height, width, dtype=torch.float64))
    return gaussians, teacher_points, batch_dict, prediction


def _loss(teacher, **options) -> LossPm:
    """A LossPm whose (normally lazily built) PM-Loss module uses ``teacher``."""
    from pmsplat.loss import PMLoss

    loss = LossPm(LossPmCfgWrapper(LossPmCfg(teacher={"name": "tensor"}, **options)))
    loss.__dict__["_pm"] = PMLoss(teacher, loss.cfg)
    return loss


def test_pm_is_registered_by_the_patched_registry():
    assert LOSSES["pm"] == (LossPmCfgWrapper, LossPm)
    (cfg,) = loss_cfgs_from_dict([{"pm": {"weight": 0.5, "teacher": {"name": "synthetic"}}}])
    (loss,) = get_losses([cfg])
    assert isinstance(loss, LossPm) and loss.cfg.weight == 0.5 and loss.cfg.teacher == {"name": "synthetic"}


@pytest.mark.parametrize("stacked", [1, 3])
def test_feeds_the_final_gaussians_and_equals_pm_loss(stacked):
    from pmsplat.teachers.tensor import TensorTeacher

    gaussians, points, batch, prediction = _problem(stacked=stacked)
    loss = _loss(TensorTeacher(points), weight=0.25)
    value = loss(prediction, batch, gaussians, global_step=10)
    final = gaussians.means[-2:]
    expected = 0.25 * pm_loss(final, points.reshape(2, -1, 3)).mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    grad = gaussians.means.grad
    assert grad[-2:].abs().sum() > 0
    if stacked > 1:
        assert grad[:-2].abs().sum() == 0  # intermediate sets are not supervised by PM-Loss
    assert set(loss.last_stats) == {"value", "raw_mean", "scale", "large_fraction", "teacher_seconds", "nonfinite_teacher_points"}
    assert loss.last_stats["value"] == pytest.approx(float(value))


def test_zero_before_apply_after_step():
    from pmsplat.teachers.tensor import TensorTeacher

    gaussians, points, batch, prediction = _problem()
    loss = _loss(TensorTeacher(points), apply_after_step=100)
    assert float(loss(prediction, batch, gaussians, global_step=99)) == 0.0
    assert float(loss(prediction, batch, gaussians, global_step=100)) > 0.0


def test_batch_mismatch_is_a_clear_error():
    from pmsplat.teachers.tensor import TensorTeacher
    from splatcore.errors import InputError

    gaussians, points, batch, prediction = _problem(batch=2)
    batch["context"]["image"] = batch["context"]["image"][:1].repeat(3, 1, 1, 1, 1)
    with pytest.raises(InputError, match="multiple"):
        _loss(TensorTeacher(points))(prediction, batch, gaussians, global_step=0)


def test_teacher_is_outside_state_dict_parameters_and_optimizer():
    gaussians, points, batch, prediction = _problem()
    teacher = ParamTeacher(points)
    loss = _loss(teacher)
    holder = torch.nn.Module()
    holder.encoder = torch.nn.Linear(2, 2)
    holder.losses = torch.nn.ModuleList([loss])
    loss(prediction, batch, gaussians, global_step=0)
    assert set(holder.state_dict()) == {"encoder.weight", "encoder.bias"}
    assert all(p is not teacher.weight for p in holder.parameters())
    optimizer = torch.optim.Adam(holder.parameters())
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(teacher.weight) not in in_optimizer


def test_bad_teacher_config_fails_at_start_up():
    from splatcore.errors import ConfigError

    with pytest.raises(ConfigError, match="teacher"):
        LossPmCfg(teacher={"weights": "x"})
    with pytest.raises(Exception, match="robust"):
        LossPmCfg(teacher={"name": "synthetic"}, robust="tukey")


def test_config_composes_loss_and_teacher_groups():
    from omegaconf import OmegaConf
    from splatcore.main import compose_config

    cfg = compose_config(["+experiment=pmloss_mvsplat_synthetic_cpu", "loss.pm.weight=0.1", "teacher.noise_std=0.0"])
    losses = loss_cfgs_from_dict(OmegaConf.to_container(cfg, resolve=True)["loss"])
    pm = [c for c in losses if isinstance(c, LossPmCfgWrapper)][0].pm
    assert pm.weight == 0.1 and pm.teacher["name"] == "synthetic" and pm.teacher["noise_std"] == 0.0
    assert OmegaConf.select(cfg, "dataset.load_pointmap") is True
    plain = compose_config(["+experiment=mvsplat_synthetic_cpu"])
    # the CPU presets use upstream's photometric loss: mse + 0.05 * lpips (no PM term)
    assert list(plain.loss) == ["mse", "lpips"]
    assert plain.loss.lpips.weight == 0.05


@pytest.mark.parametrize("first", ["import pmsplat.adapter", "import splatcore.loss", "import splatcore.main"])
def test_registration_works_whichever_package_is_imported_first(first):
    import subprocess
    import sys

    code = f"{first}\nimport splatcore.loss as losses\nprint(sorted(losses.LOSSES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'pm'" in out.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.load_pointmap=false"], "dataset.load_pointmap=true"),
        (["model.encoder.gaussians_per_pixel=2"], "one Gaussian per pixel"),
        (["teacher=cache", "teacher.path=/nonexistent/cache"], "pmsplat teacher precompute"),
        (["+teacher.not_an_option=1"], "not_an_option"),
    ],
)
def test_invalid_pm_combinations_fail_at_start_up(overrides, message):
    from splatcore.errors import ConfigError
    from splatcore.main import compose_config, typed_config

    cfg = compose_config(["+experiment=pmloss_mvsplat_synthetic_cpu", *overrides])
    with pytest.raises(ConfigError, match=message):
        typed_config(cfg, check_files=False)


def test_the_loss_config_is_typed_once_and_reused():
    """loss.pm is parsed once (PM-Loss options validated, teacher typed); the PM-Loss module uses
    that very instance as its PMLossConfig."""
    from pmsplat.teachers.registry import TeacherConfig
    from pmsplat.teachers.synthetic import SyntheticTeacherCfg

    (cfg,) = loss_cfgs_from_dict([{"pm": {"weight": 0.5, "teacher": {"name": "synthetic", "seed": 3}}}])
    assert isinstance(cfg.pm.teacher, TeacherConfig) and cfg.pm.teacher.options == SyntheticTeacherCfg(seed=3)
    (loss,) = get_losses([cfg])
    assert loss.pm.config is cfg.pm
    with pytest.raises(ConfigError, match="loss.pm.teacher: Unknown option"):
        loss_cfgs_from_dict([{"pm": {"teacher": {"name": "synthetic", "noise": 1}}}])
