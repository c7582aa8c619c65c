"""A tiny synthetic set and tiny MVSplat overrides shared by the model, adapter and reproduction tests
(the ``tiny_synthetic`` fixture in conftest.py builds the set once per session)."""

from __future__ import annotations

from pathlib import Path

SIZE = 32


def make_tiny_synthetic(root: Path) -> Path:
    """One train + two test scenes, 37 frames of 32x32 (seconds to render)."""
    from pmsplat.synthetic import SynthConfig, generate

    if not (root / "synthetic.json").is_file():
        generate(SynthConfig(out=root, train_scenes=1, test_scenes=2, frames=37, height=SIZE, width=SIZE, supersample=1))
    return root


def tiny_overrides(root: Path, output_dir: Path, *extra: str) -> list[str]:
    """The MVSplat CPU preset shrunk further (32x32, 8 depth candidates, 32 channels); ``extra``
    overrides replace base entries with the same key. Paths are quoted for Hydra where they need it."""
    from splatcore.overrides import list_override, path_override

    keys = {item.split("=", 1)[0] for item in extra}
    base = [
        "+experiment=mvsplat_synthetic_cpu",
        list_override("dataset.roots", [root]),
        f"dataset.image_shape=[{SIZE},{SIZE}]",
        f"dataset.ori_image_shape=[{SIZE},{SIZE}]",
        "model.encoder.d_feature=32",
        "model.encoder.num_depth_candidates=8",
        "model.encoder.costvolume_unet_feat_dim=16",
        "model.encoder.costvolume_unet_channel_mult=[1,1]",
        "model.encoder.depth_unet_feat_dim=16",
        path_override("output_dir", output_dir),
        "trainer.enable_progress_bar=false",
    ]
    return [item for item in base if item.split("=", 1)[0] not in keys] + list(extra)
