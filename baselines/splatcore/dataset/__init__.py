"""Datasets in the pixelSplat-family chunk format (RE10K, ACID, DL3DV, the synthetic benchmark),
data shims, view samplers, evaluation indices and the Lightning DataModule."""

from .cameras import convert_cameras, encode_cameras, field_of_view_degrees, invalid_pose_mask
from .chunks import chunk_file_name, load_chunk, read_index, write_chunk, write_index
from .config import (
    DataLoaderCfg,
    DataLoaderStageCfg,
    DatasetCfg,
    ViewSamplerAllCfg,
    ViewSamplerArbitraryCfg,
    ViewSamplerBoundedCfg,
    ViewSamplerBoundedV2Cfg,
    ViewSamplerEvaluationCfg,
    dataset_cfg_from_dict,
    view_sampler_cfg_from_dict,
)
from .data_module import DataModule, SkipReportCallback, worker_init_fn
from .dataset import ChunkedDataset, Skip, get_dataset
from .images import ImageDecodeError, decode_image, encode_image
from .shims import apply_augmentation_shim, apply_crop_shim, apply_patch_shim, rescale_and_crop_views
from .skips import SKIP_REASONS, SkipCounter
from .view_sampler import (
    IndexEntry,
    StepTracker,
    get_view_sampler,
    read_evaluation_index,
    write_evaluation_index,
)

__all__ = [
    "SKIP_REASONS",
    "ChunkedDataset",
    "DataLoaderCfg",
    "DataLoaderStageCfg",
    "DataModule",
    "DatasetCfg",
    "ImageDecodeError",
    "IndexEntry",
    "Skip",
    "SkipCounter",
    "SkipReportCallback",
    "StepTracker",
    "ViewSamplerAllCfg",
    "ViewSamplerArbitraryCfg",
    "ViewSamplerBoundedCfg",
    "ViewSamplerBoundedV2Cfg",
    "ViewSamplerEvaluationCfg",
    "apply_augmentation_shim",
    "apply_crop_shim",
    "apply_patch_shim",
    "chunk_file_name",
    "convert_cameras",
    "dataset_cfg_from_dict",
    "decode_image",
    "encode_cameras",
    "encode_image",
    "field_of_view_degrees",
    "get_dataset",
    "get_view_sampler",
    "invalid_pose_mask",
    "load_chunk",
    "read_evaluation_index",
    "read_index",
    "rescale_and_crop_views",
    "view_sampler_cfg_from_dict",
    "worker_init_fn",
    "write_chunk",
    "write_evaluation_index",
    "write_index",
]
