"""``evaluate_checkpoint`` (pmsplat.reproduce.evaluate) and ``pmsplat evaluate``: an explicit
checkpoint is loaded strictly unless ``checkpointing.no_strict_load=true`` (MVSplat's config
accepts the key too), and every path the program writes into a Hydra override (index, data root,
output folder) survives spaces, parentheses and commas."""

from __future__ import annotations

import shutil

import pytest
import torch

from pmsplat.cli import main
from pmsplat.reproduce.evaluate import evaluate_checkpoint
from pmsplat.reproduce.protocol import SYNTHETIC_SPLITS, evaluation_overrides
from splatcore.errors import CheckpointError
from testkit.tiny_mvsplat import tiny_overrides


@pytest.fixture(scope="module")
def odd_paths(tiny_synthetic, tmp_path_factory):
    """The tiny set copied under a folder name Hydra's grammar cannot read unquoted, and a model
    checkpoint with the preset's weights plus one key the model does not have."""
    from splatcore.main import build_model, compose_config

    root = tmp_path_factory.mktemp("eval") / "my data (v2), copy"
    shutil.copytree(tiny_synthetic, root)
    torch.manual_seed(0)
    model = build_model(compose_config(tiny_overrides(root, root.parent / "unused")))
    clean = root.parent / "clean weights.ckpt"
    torch.save({"state_dict": model.state_dict()}, clean)
    extra = root.parent / "extra key.ckpt"
    torch.save({"state_dict": {**model.state_dict(), "encoder.not_in_the_model": torch.zeros(2)}}, extra)
    return root, clean, extra


def _overrides(root, *extra):
    return tiny_overrides(root, root.parent / "out (eval)", *extra) + evaluation_overrides(root / SYNTHETIC_SPLITS["interpolation"], True)


def test_strict_by_default_and_no_strict_load_keeps_every_matching_weight(odd_paths):
    root, clean, extra = odd_paths
    with pytest.raises(CheckpointError, match="not_in_the_model"):
        evaluate_checkpoint(_overrides(root), extra, max_scenes=1)
    reference = evaluate_checkpoint(_overrides(root), clean, max_scenes=1)
    relaxed = evaluate_checkpoint(_overrides(root, "checkpointing.no_strict_load=true"), extra, max_scenes=1)
    assert len(reference.rows) == len(relaxed.rows) == 1
    # the same weights were loaded: the same scores to the last bit (a dropped weight would differ)
    assert relaxed.rows[0]["psnr"] == reference.rows[0]["psnr"] and relaxed.rows[0]["depth_abs_rel"] == reference.rows[0]["depth_abs_rel"]


def test_cli_evaluate_quotes_the_paths_it_writes_into_overrides(odd_paths, capsys):
    root, clean, _ = odd_paths
    out = root.parent / "scores (cli), v=1"
    overrides = [o for o in tiny_overrides(root, out) if not o.startswith("output_dir=")]
    code = main(["evaluate", "--checkpoint", str(clean), "--index", str(root / SYNTHETIC_SPLITS["interpolation"]),
                 "--ground-truth", "--max-scenes", "1", "--out", str(out), *overrides])
    assert code == 0
    assert (out / "scores.csv").is_file() and (out / "summary.md").is_file()
    assert "psnr" in capsys.readouterr().out
