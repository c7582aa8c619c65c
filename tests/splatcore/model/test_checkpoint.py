"""Checkpoints of the ModelWrapper: only ``encoder.*`` (= the official key list), strict
weights-only loading with clear errors, and a load -> save -> load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from splatcore.main import build_model, compose_config, typed_config
from splatcore.errors import CheckpointError
from splatcore.model import load_weights
from testkit.tiny_mvsplat import tiny_overrides


def test_state_dict_is_exactly_the_official_encoder_keys(shared_dir, tmp_path):
    """Released MVSplat config (main.yaml defaults) with mse + the LPIPS fallback: the wrapper's
    state dict equals the upstream key list with the ``encoder.`` prefix, shapes included."""
    keys = json.loads((shared_dir / "parity/mvsplat/state_dict_keys.json").read_text())
    expected = {keys["checkpoint_key_prefix"] + k["name"]: tuple(k["shape"]) for k in keys["keys"]}
    cfg = compose_config(["loss=[mse,lpips]", "loss.lpips.allow_missing_weights=true", "trainer.max_steps=10", f"output_dir={tmp_path}"])
    with pytest.warns(RuntimeWarning) if not _lpips_available() else _nullcontext():
        model = build_model(cfg)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert state == expected


def _lpips_available() -> bool:
    from splatcore.evaluation import lpips_availability

    return lpips_availability()[0]


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _tiny(tmp_path, seed):
    cfg = compose_config(tiny_overrides(tmp_path / "data", tmp_path / "out"))
    torch.manual_seed(seed)
    return build_model(cfg)


def test_load_save_load_round_trip(tmp_path):
    first, second, third = _tiny(tmp_path, 0), _tiny(tmp_path, 1), _tiny(tmp_path, 2)
    assert not torch.equal(first.state_dict()["encoder.backbone.backbone.conv1.weight"], second.state_dict()["encoder.backbone.backbone.conv1.weight"])
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": first.state_dict(), "epoch": 3, "global_step": 7}, path)  # Lightning layout
    assert load_weights(second, path) == ([], [])
    torch.save({"state_dict": second.state_dict()}, tmp_path / "b.ckpt")
    load_weights(third, tmp_path / "b.ckpt")
    for key, value in first.state_dict().items():
        assert torch.equal(value, third.state_dict()[key]), key
    # a bare encoder .pth (no 'state_dict' wrapper) loads into the encoder by prefix
    torch.save(first.encoder.state_dict(), tmp_path / "enc.pth")
    fourth = _tiny(tmp_path, 3)
    load_weights(fourth.encoder, tmp_path / "enc.pth")
    assert torch.equal(fourth.state_dict()["encoder.backbone.backbone.conv1.weight"], first.state_dict()["encoder.backbone.backbone.conv1.weight"])


def test_strict_loading_reports_missing_and_unexpected_keys(tmp_path):
    model = _tiny(tmp_path, 0)
    state = dict(model.state_dict())
    dropped = next(iter(state))
    state.pop(dropped)
    state["encoder.not_a_layer.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match=r"1 missing key.*1 unexpected key"):
        load_weights(model, tmp_path / "bad.ckpt")
    missing, unexpected = load_weights(model, tmp_path / "bad.ckpt", strict=False)
    assert missing == [dropped] and unexpected == ["encoder.not_a_layer.weight"]
    wrong = {k: v for k, v in model.state_dict().items()}
    wrong[dropped] = torch.zeros(1, 2, 3)
    torch.save({"state_dict": wrong}, tmp_path / "shape.ckpt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(model, tmp_path / "shape.ckpt")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    model = _tiny(tmp_path, 0)
    with pytest.raises(CheckpointError, match="not found: .*nope.ckpt"):
        load_weights(model, tmp_path / "nope.ckpt")
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "index.json").write_text("{}")  # a valid (empty) split: the checkpoint is what is wrong
    cfg = compose_config(tiny_overrides(tmp_path / "data", tmp_path / "out", f"checkpointing.load={tmp_path / 'nope.ckpt'}"))
    with pytest.raises(CheckpointError, match=r"checkpointing.load=.*nope.ckpt does not exist"):
        typed_config(cfg)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["is empty (0 bytes)", "re-create"]),
        (bytes(range(256)) * 20, ["could not be read as a torch checkpoint (unpickling failed", "re-create or re-download"]),
    ],
)
def test_a_corrupt_checkpoint_is_one_line_naming_the_path_once(tmp_path, content, words):
    """An empty file says so; random bytes give the unpickler's one-line reason, not torch's
    multi-line weights_only advice; the path appears once although the caller names it too."""
    from splatcore.model.checkpoints import read_state_dict

    path = tmp_path / "broken.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        read_state_dict(path, what=f"checkpoint {path}")
    message = str(error.value)
    assert "\n" not in message and message.count(str(path)) == 1 and "weights_only" not in message
    for word in words:
        assert word in message, (word, message)
