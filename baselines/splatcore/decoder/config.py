"""Config of the splatting decoder (the ``model/decoder`` Hydra group).

Upstream keys: ``name`` (``splatting_cuda`` in MVSplat / DepthSplat configs; ``splatting`` is the
splatcore alias). ``background_color`` is not a decoder key upstream: it comes from the dataset
config and is passed to :class:`~splatcore.decoder.decoder.Decoder` separately.

Keys added by splatcore, whose defaults reproduce the upstream ``splatting_cuda`` renderer:

- ``backend``: ``"auto"`` (gsplat when CUDA is available, the pure-PyTorch rasteriser otherwise),
  ``"gsplat"`` (error without CUDA) or ``"torch"`` (CPU or CUDA).
- ``scale_invariant``: divide the scene by each target camera's ``near`` before rasterising, as
  upstream does; the near-plane cull then sits at ``near_cull_factor * near`` in world units.
- ``near_cull_factor``: Gaussians whose view-space depth is ``<=`` this many (normalised) units are
  dropped; upstream hard-codes 0.2.
- ``use_principal_point``: ``False`` (upstream) builds a symmetric frustum from the field of view
  and ignores cx, cy; ``True`` uses the true principal point of the normalised intrinsics.
- ``normalize_depth``: ``False`` (upstream) returns the accumulated depth sum(w_i z_i); ``True``
  divides it by the accumulated alpha where that is positive (the expected depth).
- ``validate_inputs``: check shapes, finiteness, symmetry and positive semi-definiteness of the
  covariances (costs one host sync per check on CUDA).
- ``tile_size``, ``max_chunk_elements``: speed/memory knobs of the torch backend (square tiles of
  pixels, 4 is fastest for footprints of a few pixels; the largest tile x pixel x Gaussian block
  evaluated at once). Results do not depend on them. ``checkpoint`` is accepted for compatibility
  and has no effect (the torch backend's analytic backward never stores the dense blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from ..errors import ConfigError

DECODER_NAMES = ("splatting_cuda", "splatting")
BACKENDS = ("auto", "gsplat", "torch")


@dataclass
class DecoderSplattingCfg:
    # Plain ``str`` (checked in __post_init__) so that Hydra/OmegaConf accept the fields and a bad
    # value gets the message below rather than a generic type error.
    name: str = "splatting_cuda"  # one of DECODER_NAMES
    backend: str = "auto"  # one of BACKENDS
    scale_invariant: bool = True
    near_cull_factor: float = 0.2
    use_principal_point: bool = False
    normalize_depth: bool = False
    validate_inputs: bool = True
    tile_size: int = 4
    max_chunk_elements: int = 1 << 22
    checkpoint: bool = True

    def __post_init__(self) -> None:
        if self.name not in DECODER_NAMES:
            raise ConfigError(
                f"model.decoder.name={self.name!r} is not a splatting decoder; use one of {DECODER_NAMES}."
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"model.decoder.backend={self.backend!r} is unknown; use one of {BACKENDS}."
            )
        if not self.near_cull_factor > 0:
            raise ConfigError(
                f"model.decoder.near_cull_factor must be > 0 (upstream: 0.2), got {self.near_cull_factor}."
            )
        if self.tile_size < 1:
            raise ConfigError(f"model.decoder.tile_size must be >= 1, got {self.tile_size}.")
        if self.max_chunk_elements < 1:
            raise ConfigError(
                f"model.decoder.max_chunk_elements must be >= 1, got {self.max_chunk_elements}."
            )


def decoder_cfg_from_dict(values: dict) -> DecoderSplattingCfg:
    """Build the config from a plain mapping (e.g. an OmegaConf container); unknown keys are errors."""
    known = {f.name for f in fields(DecoderSplattingCfg)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown decoder config key(s) {unknown}; valid keys are {sorted(known)}."
        )
    from ..config_types import check_field_types

    check_field_types(DecoderSplattingCfg, values, "model.decoder")
    return DecoderSplattingCfg(**values)
