"""Bad input and configuration of the splatting decoder: one clear error each, or documented
behaviour (cameras that see nothing render the background)."""

from __future__ import annotations

import pytest
import torch

from splatcore.decoder import Decoder, DecoderSplattingCfg, decoder_cfg_from_dict, get_decoder
from splatcore.errors import BackendUnavailableError, ConfigError, InputError
from splatcore.decoder.validation import check_shapes
from splatcore.types import Gaussians


def scene(count: int = 5, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(1, count, 3, generator=g, dtype=dtype) * 0.3
    means[..., 2] += 3.0
    cov = torch.eye(3, dtype=dtype).expand(1, count, 3, 3) * 0.01
    harmonics = torch.randn(1, count, 3, 4, generator=g, dtype=dtype) * 0.2
    opacities = torch.full((1, count), 0.5, dtype=dtype)
    cameras = (
        torch.eye(4, dtype=dtype).expand(1, 2, 4, 4).clone(),
        torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]], dtype=dtype).expand(1, 2, 3, 3).clone(),
        torch.ones(1, 2, dtype=dtype),
        torch.full((1, 2), 10.0, dtype=dtype),
    )
    return [means, cov.clone(), harmonics, opacities], cameras


def unchecked_gaussians(means, covariances, harmonics, opacities) -> Gaussians:
    """A Gaussians object built without the dataclass __init__ (whose jaxtyping shape check would
    reject malformed shapes before the decoder's own validation could)."""
    gaussians = object.__new__(Gaussians)
    gaussians.means, gaussians.covariances = means, covariances
    gaussians.harmonics, gaussians.opacities = harmonics, opacities
    return gaussians


def render(params, cameras, shape=(6, 7), **cfg):
    return Decoder(DecoderSplattingCfg(backend="torch", **cfg))(unchecked_gaussians(*params), *cameras, shape, "depth")


@pytest.mark.parametrize(
    "index, bad, message",
    [
        (0, torch.zeros(1, 5, 2), "gaussians.means"),
        (1, torch.zeros(1, 4, 3, 3), "gaussians.covariances"),
        (1, torch.zeros(1, 5, 9), "gaussians.covariances"),
        (2, torch.zeros(1, 5, 4), "gaussians.harmonics"),
        (2, torch.zeros(1, 5, 1, 4), "gaussians.harmonics"),
        (3, torch.zeros(1, 5, 1), "gaussians.opacities"),
    ],
)
def test_wrong_gaussian_shapes(index, bad, message):
    params, cameras = scene()
    params[index] = bad
    with pytest.raises(InputError, match=message):
        render(params, cameras)


@pytest.mark.parametrize(
    "index, bad, message",
    [
        (0, torch.zeros(1, 2, 3, 4), "extrinsics"),
        (0, torch.zeros(2, 2, 4, 4), "extrinsics"),
        (1, torch.zeros(1, 3, 3, 3), "intrinsics"),
        (2, torch.zeros(1, 3), "near"),
        (3, torch.zeros(2), "far"),
    ],
)
def test_wrong_camera_shapes(index, bad, message):
    params, cameras = scene()
    cameras = list(cameras)
    cameras[index] = bad
    with pytest.raises(InputError, match=message):
        check_shapes(unchecked_gaussians(*params), *cameras, (6, 7))


def test_bad_image_shape_and_dtype_mismatch():
    params, cameras = scene()
    with pytest.raises(InputError, match="image_shape"):
        check_shapes(unchecked_gaussians(*params), *cameras, (0, 7))
    with pytest.raises(InputError, match="dtype"):
        check_shapes(unchecked_gaussians(*params), cameras[0].double(), *cameras[1:], (6, 7))


@pytest.mark.parametrize("index, name", [(0, "means"), (1, "covariances"), (2, "harmonics"), (3, "opacities")])
def test_non_finite_gaussians(index, name):
    params, cameras = scene()
    params[index] = params[index].clone()
    params[index].view(-1)[3] = float("nan") if index != 0 else float("inf")
    with pytest.raises(InputError, match=f"gaussians.{name} holds 1 non-finite"):
        render(params, cameras)


def test_non_positive_semi_definite_covariance():
    params, cameras = scene()
    params[1][0, 2] = torch.diag(torch.tensor([0.01, -0.004, 0.02]))
    with pytest.raises(InputError, match=r"positive semi-definite; covariance \[0, 2\] has eigenvalue -0.004"):
        render(params, cameras)
    # Indefinite with positive diagonal: caught by the 2x2 principal minors.
    params[1][0, 2] = torch.tensor([[0.01, 0.02, 0], [0.02, 0.01, 0], [0, 0, 0.01]])
    with pytest.raises(InputError, match="positive semi-definite"):
        render(params, cameras)
    # Semi-definite (a flat disc) is allowed: the 0.3 px^2 low-pass keeps its footprint regular.
    params[1][0, 2] = torch.diag(torch.tensor([0.01, 0.01, 0.0]))
    out = render(params, cameras)
    assert torch.isfinite(out.color).all()


def test_asymmetric_covariance():
    params, cameras = scene()
    params[1][0, 1, 0, 2] = 0.005
    with pytest.raises(InputError, match="symmetric"):
        render(params, cameras)


def test_opacity_outside_unit_interval_and_bad_near():
    params, cameras = scene()
    params[3] = params[3].clone()
    params[3][0, 0] = 1.2
    with pytest.raises(InputError, match=r"opacities must lie in \[0, 1\]"):
        render(params, cameras)
    params, cameras = scene()
    cameras[2][0, 1] = 0.0
    with pytest.raises(InputError, match="near must be > 0"):
        render(params, cameras)


def test_validation_can_be_switched_off():
    params, cameras = scene()
    params[1][0, 1, 0, 2] = 0.005  # asymmetric: with validation off, only the upper triangle counts
    out = render(params, cameras, validate_inputs=False)
    params[1][0, 1, 2, 0] = 0.005
    reference = render(params, cameras)
    torch.testing.assert_close(out.color, reference.color)


def test_cameras_that_see_nothing_render_the_background():
    params, cameras = scene()
    params[0] = params[0].clone()
    params[0][..., 2] = -3.0  # every Gaussian behind both cameras: documented, not an error
    decoder = Decoder(DecoderSplattingCfg(backend="torch"), background_color=[0.3, 0.6, 0.9])
    out = decoder(Gaussians(*params), *cameras, (6, 7), "depth")
    assert torch.equal(out.alpha, torch.zeros(1, 2, 6, 7))
    assert torch.equal(out.depth, torch.zeros(1, 2, 6, 7))
    expected = torch.tensor([0.3, 0.6, 0.9])[None, None, :, None, None].expand(1, 2, 3, 6, 7)
    assert torch.equal(out.color, expected)


def test_gsplat_backend_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the gsplat backend can run here")
    params, cameras = scene()
    decoder = Decoder(DecoderSplattingCfg(backend="gsplat"))
    with pytest.raises(BackendUnavailableError, match="needs a CUDA device.*decoder.backend=torch"):
        decoder(Gaussians(*params), *cameras, (6, 7))


def test_auto_backend_resolution():
    decoder = Decoder(DecoderSplattingCfg(backend="auto"))
    assert decoder.resolve_backend(torch.device("cpu")) == "torch"
    if torch.cuda.is_available():
        assert decoder.resolve_backend(torch.device("cuda")) == "gsplat"
    assert Decoder(DecoderSplattingCfg(backend="torch")).resolve_backend(torch.device("cuda")) == "torch"


def test_config_names_backends_and_depth_modes():
    assert DecoderSplattingCfg().name == "splatting_cuda"
    assert decoder_cfg_from_dict({"name": "splatting_cuda", "backend": "torch"}).backend == "torch"
    assert decoder_cfg_from_dict({"name": "splatting"}).name == "splatting"
    with pytest.raises(ConfigError, match="not a splatting decoder"):
        DecoderSplattingCfg(name="nerf")
    with pytest.raises(ConfigError, match="backend"):
        DecoderSplattingCfg(backend="opengl")
    with pytest.raises(ConfigError, match="unknown decoder config key"):
        decoder_cfg_from_dict({"name": "splatting_cuda", "tile": 8})
    with pytest.raises(ConfigError, match="background_color"):
        Decoder(background_color=[0.0, 0.0])
    params, cameras = scene()
    decoder = get_decoder(DecoderSplattingCfg(backend="torch"), {"background_color": [0.0, 0.0, 1.0]})
    assert decoder.background_color.tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="depth_mode"):
        Decoder(DecoderSplattingCfg(backend="torch")).forward(Gaussians(*params), *cameras, (6, 7), "inverse")
