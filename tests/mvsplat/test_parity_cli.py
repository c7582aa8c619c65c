"""``pmsplat parity --baseline mvsplat FILE``: passes on the public set, fails (exit 1, naming the
tensor) on a tampered copy, accepts any view count / non-square size with the same tensor names,
and rejects unusable files with exit 2."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from mvsplat.parity import build_encoder, run_encoder
from pmsplat.cli import main
from splatcore.testing.parity import load_parity_file, reference_slice


def test_cli_passes_on_public_set(shared_dir, capsys):
    code = main(["parity", "--baseline", "mvsplat", str(shared_dir / "parity/mvsplat/public.safetensors")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "all 14 tensors within tolerance" in out
    assert "inter_cost_volume" in out


def test_cli_passes_on_the_three_view_non_square_set(shared_dir, capsys):
    """public_v3: V = 3, 64x96, coarser subsampling (_every2/4/16, _stride2/4/8), no encoder_config
    in its metadata (-> the fixture config)."""
    path = shared_dir / "parity/mvsplat/public_v3.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} not found (public MVSplat parity sets live in ../shared/parity/mvsplat)")
    code = main(["parity", "--baseline", "mvsplat", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "V=3, 64x96" in out and "all 14 tensors within tolerance" in out
    assert "gaussians_harmonics_every16" in out and "inter_raw_gaussians_stride8" in out


def test_cli_fails_on_tampered_reference(shared_dir, tmp_path, capsys):
    public = load_parity_file(shared_dir / "parity/mvsplat/public.safetensors")
    tensors = dict(public.tensors)
    # 0.2 % relative change on one stage: above the 5e-4 intermediate tolerance.
    tensors["inter_coarse_depth_logits"] = tensors["inter_coarse_depth_logits"] * 1.002
    path = tmp_path / "tampered.safetensors"
    save_file(tensors, str(path), metadata=public.metadata)
    code = main(["parity", "--baseline", "mvsplat", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 of 14 tensors out of tolerance: inter_coarse_depth_logits" in out


def test_cli_handles_other_view_counts_and_non_square_sizes(tmp_path, capsys):
    """A synthesised set (seed 5, V = 3, 32x48) written from the port itself: checks that the
    command reads V / seed from the metadata and the size from the inputs, and slices by name."""
    generator = torch.Generator().manual_seed(5)
    v, h, w = 3, 32, 48
    extrinsics = torch.eye(4).repeat(1, v, 1, 1)
    extrinsics[0, :, 0, 3] = torch.tensor([-0.2, 0.05, 0.25])
    intrinsics = torch.tensor([[0.9, 0.0, 0.5], [0.0, 0.85, 0.5], [0.0, 0.0, 1.0]]).repeat(1, v, 1, 1)
    inputs = {
        "image": torch.rand((1, v, 3, h, w), generator=generator),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "near": torch.full((1, v), 1.0),
        "far": torch.full((1, v), 100.0),
    }
    metadata = {"seed": "5", "V": str(v), "H": str(h), "W": str(w)}
    outputs = run_encoder(build_encoder(metadata), inputs)
    tensors = {f"input_{k}": t for k, t in inputs.items()}
    for name in ("depth", "gaussians_means", "inter_cost_volume"):
        tensors[name] = outputs[name].contiguous()
    tensors["gaussians_harmonics_every8"] = reference_slice("x_every8", outputs["gaussians_harmonics"]).contiguous()
    tensors["inter_raw_gaussians_stride4"] = reference_slice("x_stride4", outputs["inter_raw_gaussians"]).contiguous()
    path = tmp_path / "synthetic_v3.safetensors"
    save_file(tensors, str(path), metadata=metadata)

    code = main(["parity", "--baseline", "mvsplat", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "V=3, 32x48" in out and "all 5 tensors within tolerance" in out

    # Wrong metadata (seed) -> different weights -> out of tolerance.
    save_file(tensors, str(path), metadata={**metadata, "seed": "6"})
    assert main(["parity", "--baseline", "mvsplat", str(path)]) == 1


def test_cli_rejects_unusable_files(tmp_path, capsys):
    missing = tmp_path / "absent.safetensors"
    assert main(["parity", "--baseline", "mvsplat", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    no_inputs = tmp_path / "no_inputs.safetensors"
    save_file({"depth": torch.zeros(1, 2, 16, 16)}, str(no_inputs), metadata={"seed": "0", "V": "2"})
    assert main(["parity", "--baseline", "mvsplat", str(no_inputs)]) == 2
    assert "input tensors" in capsys.readouterr().err
