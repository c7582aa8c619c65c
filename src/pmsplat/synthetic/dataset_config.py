"""The :class:`splatcore.dataset.DatasetCfg` of a generated synthetic benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from splatcore.dataset import DatasetCfg, ViewSamplerBoundedCfg

from pmsplat.errors import DataError

from .generate import METADATA, SYNTHETIC_FAR, SYNTHETIC_NEAR


def synthetic_dataset_cfg(root: Path, **overrides) -> DatasetCfg:
    """Dataset config for a set written by ``pmsplat data synth``: name ``synthetic``, native
    size from ``synthetic.json``, near 1 / far 15 (``SYNTHETIC_NEAR`` / ``SYNTHETIC_FAR``), bounded sampler with gaps 8..24 and 4
    targets (a scaled-down RE10K schedule), BILINEAR-free defaults of upstream (LANCZOS).
    Keyword overrides replace any field."""
    root = Path(root)
    metadata_path = root / METADATA
    if not metadata_path.is_file():
        raise DataError(f"{metadata_path} not found: generate the benchmark with `pmsplat data synth --out {root}`.")
    dataset = json.loads(metadata_path.read_text())["dataset"]
    values = {
        "name": "synthetic",
        "roots": [root],
        "image_shape": list(dataset["image_shape"]),
        "ori_image_shape": list(dataset["ori_image_shape"]),
        "near": SYNTHETIC_NEAR,
        "far": SYNTHETIC_FAR,
        "view_sampler": ViewSamplerBoundedCfg(
            num_target_views=4,
            min_distance_between_context_views=8,
            max_distance_between_context_views=24,
            initial_min_distance_between_context_views=8,
            initial_max_distance_between_context_views=24,
        ),
    }
    values.update(overrides)
    return DatasetCfg(**values)
