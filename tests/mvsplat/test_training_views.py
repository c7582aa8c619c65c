"""MVSplat training with a context-view count that changes between batches (PM-Loss fine-tunes
with 2-6 context views): one model, built from a config that says 2 context views, trains through
Lightning on batches with V = 2, 3, 2; the U-Nets' cross-view attention groups exactly the batch's
V views at every step, the losses are finite and the weights move."""

from __future__ import annotations

import lightning
import torch
from torch.utils.data import DataLoader

from splatcore.main import build_model, compose_config, typed_config
from splatcore.nn import AttentionBlock
from testkit.tiny_mvsplat import tiny_overrides

# The tiny preset has no U-Net attention; switch it on (32-channel heads) so that the cross-view
# grouping is exercised: cost-volume U-Net at 1/2 of the 8x8 features, refinement U-Net at 1/4.
ATTENTION = (
    "model.encoder.costvolume_unet_feat_dim=32",
    "model.encoder.costvolume_unet_attn_res=[2]",
    "model.encoder.depth_unet_feat_dim=32",
    "model.encoder.depth_unet_attn_res=[4]",
    "trainer.max_steps=3",
    "optimizer.lr=1e-3",
    "~loss.lpips",  # MSE alone keeps the three steps short
    "dataset.view_sampler.num_target_views=1",
)


def _batch(root, tmp_path, views: int) -> dict:
    from splatcore.dataset import DataModule

    cfg = compose_config(
        tiny_overrides(
            root, tmp_path, *ATTENTION, "dataset/view_sampler=boundedv2", f"dataset.view_sampler.num_context_views={views}"
        )
    )
    run_cfg = typed_config(cfg)
    torch.manual_seed(views)
    batch = next(iter(DataModule(run_cfg.dataset, run_cfg.data_loader).train_dataloader()))
    assert batch["context"]["image"].shape[1] == views
    return batch


def test_training_steps_with_a_changing_view_count(tiny_synthetic, tmp_path):  # noqa: F811
    batches = [_batch(tiny_synthetic, tmp_path, v) for v in (2, 3, 2)]
    cfg = compose_config(tiny_overrides(tiny_synthetic, tmp_path, *ATTENTION, "dataset.view_sampler.num_context_views=2"))
    torch.manual_seed(0)
    model = build_model(cfg)
    attention = [m for m in model.encoder.modules() if isinstance(m, AttentionBlock)]
    assert len(attention) >= 2  # both U-Nets have cross-view attention in this config
    groups: list[tuple[int, int]] = []  # (views grouped, batch entries) per attention call
    for block in attention:
        block.register_forward_pre_hook(lambda module, args: groups.append((module.num_views, args[0].shape[0])))
    before = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    losses: list[float] = []
    seen_views: list[int] = []

    class Record(lightning.pytorch.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(pl_module.last_train_record["loss/total"])
            seen_views.append(batch["context"]["image"].shape[1])

    trainer = lightning.pytorch.Trainer(
        max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    assert seen_views == [2, 3, 2]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # Every attention call grouped exactly the batch's views (B = 1: entries == views).
    per_step = len(groups) // 3
    assert [g for g, _ in groups] == [2] * per_step + [3] * per_step + [2] * per_step
    assert all(views == entries for views, entries in groups)
    after = model.encoder.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > 0.9 * len(before)
