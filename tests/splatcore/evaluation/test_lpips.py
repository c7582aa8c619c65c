"""LPIPS: state-dict layouts, an independent float64 re-implementation, weight discovery errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from splatcore.evaluation import LPIPS, VGG16Features, compute_lpips, lpips_availability
from splatcore.errors import MissingWeightsError
from splatcore.evaluation import lpips as lpips_module
from splatcore.evaluation.lpips import LINEAR_ENV, VGG16_ENV, LPIPSLinearHeads, find_linear_weights

# torchvision's vgg16().features, written out from the VGG16 ("D") architecture: index -> layer.
# conv3x3 channels 64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512,M; a ReLU follows
# every conv, so each conv takes two indices and each max-pool one.
TORCHVISION_VGG16_FEATURES = [
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512),
    (24, 512, 512), (26, 512, 512), (28, 512, 512),
]
POOL_INDICES = {4, 9, 16, 23, 30}
TAPS_AFTER_RELU_OF_CONV = [2, 7, 14, 21, 28]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


def _expected_vgg_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, cin, cout in TORCHVISION_VGG16_FEATURES:
        shapes[f"features.{index}.weight"] = (cout, cin, 3, 3)
        shapes[f"features.{index}.bias"] = (cout,)
    return shapes


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """A random torchvision-format VGG16 checkpoint (with classifier keys) and random heads."""
    folder = tmp_path_factory.mktemp("lpips")
    generator = torch.Generator().manual_seed(1)
    vgg = {}
    for key, shape in _expected_vgg_shapes().items():
        if key.endswith("weight"):
            vgg[key] = torch.randn(shape, generator=generator) * (2.0 / (shape[1] * 9)) ** 0.5
        else:
            vgg[key] = torch.randn(shape, generator=generator) * 0.05
    vgg["classifier.0.weight"] = torch.zeros(8, 8)  # torchvision files carry a classifier too
    heads = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
        for k, c in enumerate([64, 128, 256, 512, 512])
    }
    torch.save(vgg, folder / "vgg16.pth")
    torch.save(heads, folder / "heads.pth")
    return folder / "vgg16.pth", folder / "heads.pth", vgg, heads


def _reference_lpips(x0, x1, vgg, heads) -> np.ndarray:
    """The LPIPS formula in float64, straight from the state dicts (functional ops only)."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).reshape(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).reshape(1, 3, 1, 1)

    def taps(x):
        x = ((x.double() * 2 - 1) - shift) / scale
        out = []
        for index in range(30):
            if index in POOL_INDICES:
                x = F.max_pool2d(x, 2, 2)
            elif f"features.{index}.weight" in vgg:
                x = F.conv2d(x, vgg[f"features.{index}.weight"].double(), vgg[f"features.{index}.bias"].double(), padding=1)
            else:  # ReLU after the conv at index - 1
                x = torch.relu(x)
                if index - 1 in TAPS_AFTER_RELU_OF_CONV:
                    out.append(x)
        return out

    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    for k, (f0, f1) in enumerate(zip(taps(x0), taps(x1))):
        n0 = f0 / (torch.sqrt((f0**2).sum(1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt((f1**2).sum(1, keepdim=True)) + 1e-10)
        w = heads[f"lin{k}.model.1.weight"].double().reshape(1, -1, 1, 1)
        total += ((n0 - n1) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total.numpy()


def test_vgg16_state_dict_matches_torchvision_layout():
    state = VGG16Features().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == _expected_vgg_shapes()


def test_linear_heads_state_dict_matches_official_layout():
    state = LPIPSLinearHeads().state_dict()
    expected = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate([64, 128, 256, 512, 512])}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_lpips_matches_float64_reference(weight_files, rng):
    vgg_path, heads_path, vgg, heads = weight_files
    module = LPIPS(vgg_path, heads_path)
    x0 = torch.rand(2, 3, 32, 48, generator=rng)
    x1 = (x0 + 0.2 * torch.randn(2, 3, 32, 48, generator=rng)).float()  # unclipped, leaves [0,1]
    reference = _reference_lpips(x0, x1, vgg, heads)
    assert (reference > 1e-3).all()
    np.testing.assert_allclose(module(x1, x0).double().numpy(), reference, rtol=2e-4)
    # In float64 the only difference left is the float32 rounding of the six shift/scale constants.
    np.testing.assert_allclose(module.double()(x1.double(), x0.double()).numpy(), reference, rtol=1e-7)
    assert module(x0.double(), x0.double()).abs().max() < 1e-12


def test_compute_lpips_finds_weights_through_env(weight_files, rng, monkeypatch):
    vgg_path, heads_path, vgg, heads = weight_files
    monkeypatch.setenv(VGG16_ENV, str(vgg_path))
    monkeypatch.setenv(LINEAR_ENV, str(heads_path))
    assert lpips_availability()[0]
    gt = torch.rand(1, 3, 32, 32, generator=rng)
    pred = torch.rand(1, 3, 32, 32, generator=rng)
    np.testing.assert_allclose(compute_lpips(gt, pred).double().numpy(), _reference_lpips(pred, gt, vgg, heads), rtol=2e-4)


def test_lpips_is_a_frozen_loss_that_never_lands_in_checkpoints(weight_files, rng):
    vgg_path, heads_path, _, _ = weight_files
    module = LPIPS(vgg_path, heads_path)
    assert module.state_dict() == {} and list(module.parameters()) == []
    module.train()
    assert not module.training
    wrapper = torch.nn.Module()
    wrapper.losses = torch.nn.ModuleList([module])
    assert wrapper.state_dict() == {}
    pred = torch.rand(1, 3, 32, 32, generator=rng, requires_grad=True)
    target = torch.rand(1, 3, 32, 32, generator=rng)
    module(pred, target).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert torch.equal(module(pred, target), module(pred, target))  # no dropout


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(VGG16_ENV, str(tmp_path / "nope.pth"))
    available, reason = lpips_availability()
    assert not available and "nope.pth" in reason and VGG16_ENV in reason
    with pytest.raises(MissingWeightsError, match="download.pytorch.org/models/vgg16-397923af.pth"):
        LPIPS()
    with pytest.raises(MissingWeightsError, match="vgg16-397923af"):
        compute_lpips(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    # No env var, nothing in ./checkpoints, the torch hub cache or the checkout's checkpoints/.
    monkeypatch.delenv(VGG16_ENV)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_module, "checkout_checkpoints_dir", lambda: tmp_path / "checkout" / "checkpoints")
    available, reason = lpips_availability()
    assert not available and "checkpoints/vgg16-397923af.pth" in reason
    # The message names every place looked at and the command that provides the file.
    assert "checkpoints/lpips_vgg16.safetensors" in reason and "checkout/checkpoints/lpips_vgg16.safetensors" in reason
    assert "make setup" in reason and "python -m splatcore.evaluation.lpips_weights" in reason


def test_wrong_file_content_is_reported(tmp_path, weight_files):
    _, heads_path, _, _ = weight_files
    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(MissingWeightsError, match="shape"):
        LPIPS(tmp_path / "bad.pth", heads_path)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="Cannot read"):
        LPIPS(tmp_path / "garbage.pth", heads_path)


def test_installed_lpips_package_heads_load(monkeypatch):
    monkeypatch.delenv(LINEAR_ENV, raising=False)
    try:
        path = find_linear_weights()
    except MissingWeightsError:
        pytest.skip("the PyPI 'lpips' package (pip install --no-deps lpips==0.1.4) is not installed")
    state = torch.load(path, map_location="cpu", weights_only=True)
    heads = LPIPSLinearHeads()
    heads.load_state_dict(state, strict=True)
    assert all((v >= 0).all() for v in state.values())  # LPIPS v0.1 heads are non-negative


def test_matches_the_official_lpips_package(weight_files, rng, monkeypatch):
    """Cross-check against the PyPI ``lpips`` code itself, fed the same random weights.

    The package imports torchvision only to build ``vgg16().features``; a stand-in module that
    builds the same Sequential (random init) is injected, and the random checkpoint is loaded
    into the package's slices afterwards.
    """
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the PyPI 'lpips' package (pip install --no-deps lpips==0.1.4) is not installed")
    vgg_path, heads_path, vgg, heads = weight_files
    fake_models = types.SimpleNamespace(vgg16=lambda pretrained=False, **_: VGG16Features())
    fake_torchvision = types.ModuleType("torchvision")
    fake_torchvision.models = fake_models
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        import lpips as official_lpips

        official = official_lpips.LPIPS(net="vgg", pnet_rand=True, model_path=str(heads_path), verbose=False)
    finally:  # do not leave the package bound to the stand-in torchvision
        for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
            del sys.modules[name]
    slice_of = {i: k + 1 for k, (a, b) in enumerate([(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]) for i in range(a, b)}
    official.net.load_state_dict(
        {f"slice{slice_of[int(key.split('.')[1])]}.{key.split('.', 1)[1]}": value
         for key, value in vgg.items() if key.startswith("features.")},
        strict=True,
    )
    x0 = torch.rand(2, 3, 32, 40, generator=rng)
    x1 = (x0 + 0.15 * torch.randn(2, 3, 32, 40, generator=rng)).float()
    with torch.no_grad():
        expected = official(x1, x0, normalize=True).reshape(-1)
    ours = LPIPS(vgg_path, heads_path)(x1, x0)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
def test_lpips_on_cuda_matches_cpu(weight_files, rng):
    vgg_path, heads_path, _, _ = weight_files
    gt = torch.rand(2, 3, 64, 96, generator=rng)
    pred = torch.rand(2, 3, 64, 96, generator=rng)
    module = LPIPS(vgg_path, heads_path)
    cpu = module(pred, gt)
    cuda = compute_lpips(gt.cuda(), pred.cuda(), lpips=module.cuda())
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-3, atol=1e-5)  # TF32 convolutions allowed
