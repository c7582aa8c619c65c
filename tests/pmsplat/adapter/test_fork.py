"""The PM-Loss fork's options (pmsplat.adapter.fork), reached by the baselines only through the
lines of patches/: their defaults are upstream's, the fork's settings do what the fork does."""

from __future__ import annotations

import ast
from types import SimpleNamespace

import pytest
import torch

from depthsplat.config import EncoderDepthSplatCfg, preset_cpu_tiny
from depthsplat.encoder import EncoderDepthSplat
from depthsplat.errors import DepthSplatError
from pmsplat.adapter import fork
from splatcore.dataset.config import DatasetCfg
from splatcore.errors import ConfigError
from splatcore.model.config import TrainCfg
from testkit import REPO_ROOT

SRC = REPO_ROOT / "src" / "pmsplat" / "adapter"


def _train_cfg(threshold: float, after: int = 300) -> SimpleNamespace:
    return SimpleNamespace(skip_large_sample_loss=threshold, skip_large_sample_after_step=after)


def test_large_sample_skip_scales_only_large_samples_after_the_step():
    total = torch.tensor(2.0, requires_grad=True)
    record = {"loss/mse": 0.06, "loss/lpips": 0.05, "loss/pm": 5.0}  # mse + lpips = 0.11 > 0.1
    skipped = fork.skip_large_sample(_train_cfg(0.1), 301, total, record)
    assert skipped.item() == pytest.approx(2e-8) and record["train/skipped_large_sample"] == 1.0
    skipped.backward()
    assert total.grad.item() == pytest.approx(1e-8)
    for cfg, step, losses in [(_train_cfg(0.1), 300, record), (_train_cfg(0.0), 10**6, record),
                              (_train_cfg(0.1), 301, {"loss/mse": 0.06, "loss/pm": 5.0})]:
        kept = dict(losses)
        kept.pop("train/skipped_large_sample", None)
        assert fork.skip_large_sample(cfg, step, total, kept) is total
        assert "train/skipped_large_sample" not in kept


def test_fork_keys_default_to_upstream_and_are_checked():
    assert TrainCfg().skip_large_sample_loss == 0.0 and DatasetCfg.__dataclass_fields__["resize_filter"].default == "lanczos"
    cfg = EncoderDepthSplatCfg()
    assert (cfg.offset_mode, cfg.offset_factor, cfg.confidence_activation) == ("ori", 0.5, None)
    with pytest.raises(ConfigError, match="skip_large_sample_loss"):
        TrainCfg(skip_large_sample_loss=-1.0)
    with pytest.raises(DepthSplatError, match="confidence_activation"):
        EncoderDepthSplatCfg(confidence_activation="relu")
    with pytest.raises(ConfigError, match="resize_filter"):
        fork.check_resize_filter(SimpleNamespace(resize_filter="cubic"))


def _context(b: int = 1, v: int = 2, h: int = 32, w: int = 32) -> dict:
    g = torch.Generator().manual_seed(0)
    extrinsics = torch.eye(4).repeat(b, v, 1, 1)
    extrinsics[:, :, 0, 3] = torch.linspace(-0.2, 0.2, v)
    intrinsics = torch.tensor([[0.9, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1.0]]).repeat(b, v, 1, 1)
    return {"image": torch.rand(b, v, 3, h, w, generator=g), "extrinsics": extrinsics, "intrinsics": intrinsics,
            "near": torch.full((b, v), 1.0), "far": torch.full((b, v), 100.0)}


def test_confidence_channel_is_softplus_of_channel_one_plus_match_probability():
    torch.manual_seed(0)
    encoder = EncoderDepthSplat(preset_cpu_tiny(num_scales=1, confidence_activation="softplus")).eval()
    plain = EncoderDepthSplat(preset_cpu_tiny(num_scales=1)).eval()
    assert encoder.raw_channels == plain.raw_channels + 1
    dump: dict = {}
    with torch.no_grad():
        out = encoder(_context(), 0, visualization_dump=dump)
    assert out["confidences"].shape == out["gaussians"].opacities.shape == (1, 2 * 32 * 32)
    torch.testing.assert_close(dump["confidences"], out["confidences"])
    assert bool((out["confidences"] >= 0).all())  # softplus(x) + match probability
    raw = torch.randn(2, 2, 6)
    prob = torch.rand(4, 1, 2, 3)
    result = fork.add_confidences({}, None, raw, prob, "sigmoid", 1)
    expected = torch.sigmoid(raw) + prob.reshape(2, 2, 6)
    torch.testing.assert_close(result["confidences"], expected.reshape(2, 12))


@pytest.mark.parametrize("module", ["fork.py", "loss_pm.py"])
def test_adapter_modules_do_not_import_what_imports_them(module):
    """The baselines import these modules while they load (patch lines), so these must not import the
    modules holding those lines (no cycle): no splatcore registry, config, dataset or model module at
    import time (error classes are imported inside functions)."""
    tree = ast.parse((SRC / module).read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in top_level if isinstance(node, ast.ImportFrom) and node.module]
    patched = ("splatcore.loss.registry", "splatcore.loss", "splatcore.model", "splatcore.dataset", "depthsplat")
    assert not [name for name in names if name in patched or name.startswith(("splatcore.model", "splatcore.dataset",
                                                                                "depthsplat"))]
