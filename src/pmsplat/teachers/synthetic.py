"""A synthetic pointmap teacher for the synthetic benchmark (no learned model needed).

It derives the pointmap from the ground truth that the data loader provides
(``dataset.load_pointmap=true``) and gives it the character of a learned pointmap model
(VGGT-like): expressed in its own similarity frame, smooth and complete across object
boundaries, with noise and low-frequency distortion. Everything is deterministic in
(``seed``, scene name, frame indices), so an example always gets the same teacher output.

Knobs (:class:`SyntheticTeacherCfg`; lengths are relative to the example's scene scale ``s`` =
median distance of the ground-truth points to their centroid):

- ``edge_blur_px``: std of a Gaussian blur of the pointmap in image space (pixels). Points near
  depth edges are smeared between foreground and background, like a network's "flying points".
- ``distortion``: amplitude (x s) of a smooth world-space warp, a sum of ``distortion_waves``
  random 3-D sinusoids of wavelength ``distortion_wavelength`` (x s): low-frequency, consistent
  across views (a globally bent reconstruction).
- ``view_misalignment_deg`` / ``view_misalignment_shift``: per-view random rotation (degrees, std)
  about the view's centroid and translation (x s, std): multi-view inconsistency.
- ``noise_std``: i.i.d. Gaussian noise (x s) per point.
- ``scale_range`` (log-uniform) and ``translation_std`` (x s): the random similarity frame; the
  rotation is uniform. ``frame=False`` keeps the ground-truth frame.
- confidence: ``1 + (confidence_max - 1) / (1 + (r / confidence_edge_ratio)^2)`` where r is the
  largest jump to a 4-neighbour in the ground truth divided by the image's median jump, so
  confidence is lowest at depth edges.

Defaults (blur 1 px, distortion 0.02, misalignment 0.3 deg / 0.003, noise 0.005) are
informative but imperfect. With every degradation set to 0 the output is an exact similarity
transform of the ground truth.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from pmsplat.errors import InputError
from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.registry import register_teacher


@dataclass
class SyntheticTeacherCfg:
    edge_blur_px: float = 1.0
    distortion: float = 0.02
    distortion_wavelength: float = 1.5
    distortion_waves: int = 3
    view_misalignment_deg: float = 0.3
    view_misalignment_shift: float = 0.003
    noise_std: float = 0.005
    frame: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)
    translation_std: float = 1.0
    confidence_max: float = 5.0
    confidence_edge_ratio: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        negative = [name for name in ("edge_blur_px", "distortion", "view_misalignment_deg", "view_misalignment_shift", "noise_std", "translation_std") if getattr(self, name) < 0]
        if negative:
            raise InputError(f"SyntheticTeacherCfg: {negative} must be >= 0.")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise InputError(f"SyntheticTeacherCfg.scale_range must satisfy 0 < low <= high, got {self.scale_range}.")
        if self.distortion_wavelength <= 0 or self.confidence_edge_ratio <= 0 or self.confidence_max < 1:
            raise InputError("SyntheticTeacherCfg: distortion_wavelength and confidence_edge_ratio must be > 0, confidence_max >= 1.")


def example_generator(seed: int, scene: str, indices: list[int]) -> torch.Generator:
    """A CPU generator seeded from (seed, scene, frame indices)."""
    digest = hashlib.sha256(f"{seed}|{scene}|{','.join(map(str, indices))}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def random_rotation(generator: torch.Generator) -> Float[Tensor, "3 3"]:
    """Uniform random rotation (QR of a Gaussian matrix with sign fix, det +1), float64."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def axis_angle_rotation(axis: Tensor, angle: float) -> Tensor:
    axis = axis / axis.norm()
    skew = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * skew + (1 - math.cos(angle)) * skew @ skew


def gaussian_blur(points: Float[Tensor, "view height width 3"], sigma: float) -> Float[Tensor, "view height width 3"]:
    """Separable Gaussian blur of each coordinate in image space, replicate padding."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=points.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    grid = points.permute(0, 3, 1, 2)  # (V, 3, H, W)
    channels = grid.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    grid = F.conv2d(F.pad(grid, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
    grid = F.conv2d(F.pad(grid, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)
    return grid.permute(0, 2, 3, 1)


def edge_confidence(points: Float[Tensor, "view height width 3"], maximum: float, edge_ratio: float) -> Float[Tensor, "view height width"]:
    """Confidence in [1, maximum], low where the ground truth jumps between neighbouring pixels."""
    jump = torch.zeros(points.shape[:-1], dtype=points.dtype)
    dx = (points[:, :, 1:] - points[:, :, :-1]).norm(dim=-1)
    dy = (points[:, 1:] - points[:, :-1]).norm(dim=-1)
    jump[:, :, 1:] = torch.maximum(jump[:, :, 1:], dx)
    jump[:, :, :-1] = torch.maximum(jump[:, :, :-1], dx)
    jump[:, 1:] = torch.maximum(jump[:, 1:], dy)
    jump[:, :-1] = torch.maximum(jump[:, :-1], dy)
    ratio = jump / jump.median().clamp_min(1e-12)
    return 1 + (maximum - 1) / (1 + (ratio / edge_ratio) ** 2)


@register_teacher(
    "synthetic", SyntheticTeacherCfg, install="ground-truth pointmaps (synthetic benchmark, dataset.load_pointmap=true)",
    needs_pointmap=True, real=False,
)
class SyntheticTeacher:
    """Pointmap teacher from ground truth; see the module docstring for the knobs.

    ``__call__(images (B, V, 3, H, W), context)`` needs ``context["pointmap"]`` (B, V, H, W, 3)
    ground-truth world points, ``context["scene"]`` (B scene names) and ``context["index"]``
    (B, V) frame indices. Returns a :class:`TeacherOutput` with points (B, V, H, W, 3) in the
    teacher's own similarity frame and confidence (B, V, H, W), on the images' device and dtype.
    """

    patch_size = 1

    def __init__(self, cfg: SyntheticTeacherCfg | None = None) -> None:
        self.cfg = cfg or SyntheticTeacherCfg()

    def output_frame(self, views: int) -> str:
        """The frame of the returned points (the same for any number of views)."""
        if not self.cfg.frame:
            return "the ground truth's world frame (frame=false)"
        return "a random similarity transform of the ground truth's world frame, fixed per example (seed, scene, frames)"

    def __call__(
        self,
        images: Float[Tensor, "batch view 3 height width"],
        context: dict | None = None,
    ) -> TeacherOutput:
        if context is None or "pointmap" not in context:
            raise InputError(
                "SyntheticTeacher needs the ground-truth pointmap: pass context={'pointmap': (B, V, H, W, 3), "
                "'scene': [...], 'index': (B, V)} and load the dataset with dataset.load_pointmap=true "
                "(only the synthetic benchmark has ground truth)."
            )
        truth = context["pointmap"]
        batch, views, _, height, width = images.shape
        if not isinstance(truth, Tensor) or tuple(truth.shape) != (batch, views, height, width, 3):
            raise InputError(
                f"context['pointmap'] must have shape {(batch, views, height, width, 3)} to match the images, got "
                f"{tuple(truth.shape) if isinstance(truth, Tensor) else type(truth).__name__}."
            )
        if not torch.isfinite(truth).all():
            raise InputError("context['pointmap'] holds non-finite values; the synthetic ground truth must be complete.")
        scenes = context.get("scene")
        indices = context.get("index")
        if scenes is None or indices is None or len(scenes) != batch or tuple(indices.shape) != (batch, views):
            raise InputError("context needs 'scene' (B names) and 'index' (B, V) so that the teacher frame is deterministic per example.")
        points, confidence = [], []
        for b in range(batch):
            generator = example_generator(self.cfg.seed, str(scenes[b]), indices[b].tolist())
            example_points, example_confidence = self.degrade(truth[b].detach().cpu().double(), generator)
            points.append(example_points)
            confidence.append(example_confidence)
        return TeacherOutput(
            points=torch.stack(points).to(device=images.device, dtype=images.dtype),
            confidence=torch.stack(confidence).to(device=images.device, dtype=images.dtype),
        )

    def degrade(self, truth: Float[Tensor, "view height width 3"], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Ground truth (V, H, W, 3) float64 -> (teacher points, confidence) of one example."""
        cfg = self.cfg
        flat = truth.reshape(-1, 3)
        scale = (flat - flat.mean(dim=0)).norm(dim=1).median().clamp_min(1e-9)
        points = truth.clone()
        if cfg.edge_blur_px > 0:
            points = gaussian_blur(points, cfg.edge_blur_px)
        if cfg.view_misalignment_deg > 0 or cfg.view_misalignment_shift > 0:
            for view in range(points.shape[0]):
                centre = points[view].reshape(-1, 3).mean(dim=0)
                angle = math.radians(cfg.view_misalignment_deg) * float(torch.randn((), generator=generator, dtype=torch.float64))
                rotation = axis_angle_rotation(torch.randn(3, generator=generator, dtype=torch.float64), angle)
                shift = cfg.view_misalignment_shift * scale * torch.randn(3, generator=generator, dtype=torch.float64)
                points[view] = (points[view] - centre) @ rotation.T + centre + shift
        if cfg.distortion > 0:
            directions = torch.randn(cfg.distortion_waves, 3, generator=generator, dtype=torch.float64)
            directions = directions / directions.norm(dim=1, keepdim=True)
            frequency = 2 * math.pi / (cfg.distortion_wavelength * scale)
            phases = 2 * math.pi * torch.rand(cfg.distortion_waves, generator=generator, dtype=torch.float64)
            amplitudes = torch.randn(cfg.distortion_waves, 3, generator=generator, dtype=torch.float64)
            amplitudes = amplitudes / amplitudes.norm(dim=1, keepdim=True)
            waves = torch.sin(points @ directions.T * frequency + phases)  # (V, H, W, K)
            points = points + cfg.distortion * scale * (waves @ amplitudes) / math.sqrt(cfg.distortion_waves)
        if cfg.noise_std > 0:
            points = points + cfg.noise_std * scale * torch.randn(points.shape, generator=generator, dtype=torch.float64)
        if cfg.frame:
            rotation = random_rotation(generator)
            low, high = math.log(cfg.scale_range[0]), math.log(cfg.scale_range[1])
            similarity_scale = math.exp(low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64)))
            translation = cfg.translation_std * scale * torch.randn(3, generator=generator, dtype=torch.float64)
            points = similarity_scale * points @ rotation.T + translation
        confidence = edge_confidence(truth, cfg.confidence_max, cfg.confidence_edge_ratio)
        return points, confidence
