"""splatcore.testing.parity: the weight rule's categories, name-based slicing and comparison."""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from torch import nn

from splatcore.testing.parity import (
    apply_deterministic_weights,
    base_name,
    compare_outputs,
    compare_tensor,
    reference_slice,
    tolerance_for,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.norm = nn.BatchNorm1d(4)
        self.register_buffer("gamma", torch.zeros(5))


def test_weight_rule_categories():
    module = Tiny()
    tracked_before = module.norm.num_batches_tracked.clone()
    apply_deterministic_weights(module, seed=7)
    state = module.state_dict()

    def draw(name, shape):
        g = torch.Generator().manual_seed((zlib.crc32(name.encode()) + 7) % 2**31)
        return torch.randn(shape, generator=g, dtype=torch.float32)

    assert torch.equal(state["conv.weight"], draw("conv.weight", (3, 2, 3, 3)) / math.sqrt(18))
    assert torch.equal(state["conv.bias"], 0.1 * draw("conv.bias", (3,)))
    assert torch.equal(state["norm.weight"], 1 + 0.1 * draw("norm.weight", (4,)))
    assert torch.equal(state["norm.running_var"], 1 + 0.1 * draw("norm.running_var", (4,)).abs())
    assert torch.equal(state["norm.running_mean"], 0.1 * draw("norm.running_mean", (4,)))
    assert torch.equal(state["gamma"], 1 + 0.1 * draw("gamma", (5,)))
    assert torch.equal(state["norm.num_batches_tracked"], tracked_before)  # integer: untouched


def test_name_based_slicing_and_tolerances():
    x = torch.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    assert torch.equal(reference_slice("inter_foo_stride4", x), x[..., ::4, ::4])
    assert torch.equal(reference_slice("gaussians_harmonics_every8", x), x[:, ::8])
    assert torch.equal(reference_slice("depth", x), x)
    assert base_name("inter_foo_stride4") == "inter_foo" and base_name("depth") == "depth"
    assert tolerance_for("inter_foo") == 5e-4 and tolerance_for("gaussians_means") == 2e-3


def test_compare_reports_errors_relative_to_reference_scale():
    reference = torch.tensor([[10.0, -20.0]])
    assert compare_tensor("depth", reference, torch.tensor([[10.0, -20.03]])).ok  # 1.5e-3
    failing = compare_tensor("depth", reference, torch.tensor([[10.05, -20.0]]))  # 2.5e-3
    assert not failing.ok and abs(failing.relative_error - 2.5e-3) < 1e-6
    assert compare_tensor("depth", reference, torch.zeros(1, 3)).problem.startswith("shape")
    assert compare_tensor("depth", reference, torch.tensor([[math.nan, 0.0]])).problem == "non-finite values in the port"
    results = compare_outputs({"inter_x_stride2": torch.ones(1, 2, 2)}, {})
    assert results[0].problem == "missing in the port's outputs" and not results[0].ok


def _tiny_parity_file(path, metadata):
    from safetensors.torch import save_file

    tensors = {
        "input_image": torch.zeros(1, 2, 3, 4, 4),
        "input_extrinsics": torch.eye(4).expand(1, 2, 4, 4).contiguous(),
        "input_intrinsics": torch.eye(3).expand(1, 2, 3, 3).contiguous(),
        "input_near": torch.ones(1, 2),
        "input_far": torch.full((1, 2), 10.0),
        "depth": torch.ones(1, 2, 4, 4),
    }
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_hook_metadata_takes_the_encoder_config_from_the_file_else_from_config_json(tmp_path):
    """The file's own ``encoder_config`` wins; a file without one gets the ``encoder_config`` of the
    config.json beside it (as JSON); without either the metadata is passed on unchanged."""
    import json

    from splatcore.testing.parity import ParityError, load_parity_file

    bare = load_parity_file(_tiny_parity_file(tmp_path / "bare.safetensors", {"seed": "3"}))
    assert bare.hook_metadata() == {"seed": "3"}
    (tmp_path / "config.json").write_text(json.dumps({"encoder_config": {"name": "x", "num_scales": 2}, "other": 1}))
    injected = load_parity_file(tmp_path / "bare.safetensors").hook_metadata()
    assert json.loads(injected["encoder_config"]) == {"name": "x", "num_scales": 2}
    assert injected["seed"] == "3" and injected["encoder_config_source"].endswith("config.json")
    own = {"seed": "3", "encoder_config": json.dumps({"name": "y"})}
    carried = load_parity_file(_tiny_parity_file(tmp_path / "own.safetensors", own))
    assert carried.hook_metadata() == own
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ParityError, match="config.json"):
        bare.hook_metadata()


def test_parity_command_needs_exactly_one_of_file_and_keys(tmp_path, capsys):
    import argparse

    from pmsplat.commands import parity as command

    assert command.run(argparse.Namespace(baseline="depthsplat", file=None, keys=None, threads=1)) == 2
    both = argparse.Namespace(baseline="depthsplat", file=str(tmp_path / "a"), keys=str(tmp_path / "b"), threads=1)
    assert command.run(both) == 2
    assert "either" in capsys.readouterr().err
