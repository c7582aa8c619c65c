"""Training behaviour of the shared ModelWrapper: a short real MVSplat run whose loss decreases,
the run() API's outputs, and DepthSplat's intermediate-depth supervision arithmetic."""

from __future__ import annotations

import csv

import lightning
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from splatcore.loss import LossMse, LossMseCfg, LossMseCfgWrapper
from splatcore.main import build_model, compose_config, run, typed_config
from splatcore.model import ModelWrapper, OptimizerCfg, TrainCfg
from splatcore.model import TestCfg as _TestCfg
from splatcore.types import DecoderOutput, Gaussians
from testkit.tiny_mvsplat import tiny_overrides


def _fixed_batch(cfg):
    from splatcore.dataset import DataModule

    run_cfg = typed_config(cfg)
    torch.manual_seed(0)
    loader = DataModule(run_cfg.dataset, run_cfg.data_loader).train_dataloader()
    return next(iter(loader))


def test_short_training_run_lowers_the_loss(tiny_synthetic, tmp_path):
    """12 Lightning steps on one fixed batch (16x16 crops): the loss of the last steps is well
    below the first."""
    cfg = compose_config(
        tiny_overrides(tiny_synthetic, tmp_path, "trainer.max_steps=12", "optimizer.lr=1e-3", "dataset.image_shape=[16,16]")
    )
    batch = _fixed_batch(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    losses: list[float] = []

    class Record(lightning.pytorch.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(pl_module.last_train_record["loss/total"])

    trainer = lightning.pytorch.Trainer(
        max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[Record()], gradient_clip_val=0.5,
    )
    trainer.fit(model, train_dataloaders=DataLoader([batch] * 12, batch_size=None))
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_run_api_writes_history_and_an_encoder_only_checkpoint(tiny_synthetic, tmp_path):
    cfg = compose_config(tiny_overrides(tiny_synthetic, tmp_path / "run", "trainer.max_steps=3", "trainer.val_check_interval=3"))
    result = run(cfg)
    assert [int(row["step"]) for row in result.history] == [0, 1, 2]
    with (result.output_dir / "train_history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["loss/total"]) for r in rows] == pytest.approx([r["loss/total"] for r in result.history])
    assert {"loss/mse", "train/psnr", "lr"} <= set(rows[0])
    checkpoint = torch.load(result.checkpoint_path, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 3
    assert all(key.startswith("encoder.") for key in checkpoint["state_dict"])
    assert (result.output_dir / "config.yaml").is_file()


class _StackedEncoder(nn.Module):
    """Stand-in for DepthSplat in training: returns k stacked Gaussian sets (intermediates first),
    the i-th with constant opacity ``scale * (i + 1)``."""

    def __init__(self, copies: int) -> None:
        super().__init__()
        self.copies = copies
        self.scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, context, global_step, deterministic=False, visualization_dump=None, scene_names=None):
        b, v, _, h, w = context["image"].shape
        g = v * h * w
        levels = torch.arange(1, self.copies + 1, dtype=torch.float32).repeat_interleave(b)
        opacities = (self.scale * levels)[:, None].expand(-1, g)
        gaussians = Gaussians(
            means=torch.zeros(b * self.copies, g, 3), covariances=torch.eye(3).expand(b * self.copies, g, 3, 3),
            harmonics=torch.zeros(b * self.copies, g, 3, 1), opacities=opacities,
        )
        return {"gaussians": gaussians, "depths": torch.ones(b * self.copies, v, h, w)}


class _OpacityDecoder(nn.Module):
    """Renders each target view as its Gaussian set's mean opacity (checks tiling + order)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, gaussians, extrinsics, intrinsics, near, far, image_shape, depth_mode=None):
        b, v = extrinsics.shape[:2]
        self.calls.append(b)
        value = gaussians.opacities.mean(dim=1)[:, None, None, None, None]
        return DecoderOutput(color=value.expand(b, v, 3, *image_shape))


def test_intermediate_supervision_tiles_targets_and_weights_0p9_powers():
    b, copies = 2, 3
    wrapper = ModelWrapper(
        OptimizerCfg(), _TestCfg(), TrainCfg(intermediate_loss_weight=0.9), _StackedEncoder(copies), _OpacityDecoder(),
        [LossMse(LossMseCfgWrapper(LossMseCfg(weight=1.0)))], max_steps=10,
    )
    target = {
        "image": torch.full((b, 2, 3, 4, 4), 0.5), "extrinsics": torch.eye(4).expand(b, 2, 4, 4),
        "intrinsics": torch.eye(3).expand(b, 2, 3, 3), "near": torch.ones(b, 2), "far": torch.full((b, 2), 10.0),
        "index": torch.zeros(b, 2, dtype=torch.int64),
    }
    context = {k: v for k, v in target.items()}
    total = wrapper.training_step({"context": context, "target": target, "scene": ["a", "b"]}, 0)
    assert wrapper.decoder.calls == [b * copies]  # one render of the tiled targets
    mse = [(0.1 * (i + 1) - 0.5) ** 2 for i in range(copies)]  # opacity of set i vs target 0.5
    expected = mse[2] + 0.9**2 * mse[0] + 0.9 * mse[1]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    record = wrapper.last_train_record
    assert record["loss/mse"] == pytest.approx(mse[2], rel=1e-5)
    assert record["loss/mse_intermediate"] == pytest.approx(0.81 * mse[0] + 0.9 * mse[1], rel=1e-5)
