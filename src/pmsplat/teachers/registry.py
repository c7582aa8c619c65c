"""The teacher registry: build any pointmap teacher from a config (what the Hydra ``teacher=``
group composes), and the canonical identity of a teacher config (what the offline cache pins).

A teacher config is a mapping ``{name: <teacher>, <option>: <value>, ...}`` (a dict, an OmegaConf
``DictConfig``, or one of the teachers' dataclass configs). The options are the fields of the
teacher's dataclass config; unknown names and unknown options are errors naming the valid ones.

========== ============================================ ==============================================
name       class (config)                               needs
========== ============================================ ==============================================
vggt       VGGTTeacher (VGGTTeacherCfg)                 ``pip install "vggt @ git+https://github.com/facebookresearch/vggt"``
dust3r     DUSt3RTeacher (DUSt3RTeacherCfg)             a recursive clone of naver/dust3r (``teacher.repo``)
da3        DA3Teacher (DA3TeacherCfg)                   ``pip install depth-anything-3 addict``
synthetic  SyntheticTeacher (SyntheticTeacherCfg)       ground-truth pointmaps (``dataset.load_pointmap=true``)
cache      CacheTeacher (CacheTeacherCfg)               a cache from ``pmsplat teacher precompute``
tensor     TensorTeacher (its config)                   pmsplat.teachers.tensor (when installed in the tree)
========== ============================================ ==============================================

The exact install instructions are ``TEACHERS[name].install`` (what ``pmsplat teacher list`` prints).
A missing optional package surfaces as :class:`~pmsplat.errors.MissingDependencyError` whose
message carries the pip command; nothing is imported or downloaded before ``build_teacher`` runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from pmsplat.errors import InputError
from pmsplat.teachers.base import Teacher


@dataclass(frozen=True)
class TeacherSpec:
    """Where a teacher lives. ``install`` is the one-line requirement shown in errors and docs;
    ``needs_pointmap``: the teacher reads ground-truth pointmaps from ``context["pointmap"]``."""

    module: str
    class_name: str
    config_name: str | None
    install: str
    needs_pointmap: bool = False
    identity_excludes: tuple[str, ...] = ("device",)


TEACHERS: dict[str, TeacherSpec] = {
    "vggt": TeacherSpec("pmsplat.teachers.vggt", "VGGTTeacher", "VGGTTeacherCfg",
                        'pip install "vggt @ git+https://github.com/facebookresearch/vggt"'),
    # naver/dust3r is not pip-installable (no setup.py/pyproject.toml; CroCo is a git submodule)
    "dust3r": TeacherSpec("pmsplat.teachers.dust3r", "DUSt3RTeacher", "DUSt3RTeacherCfg",
                          "git clone --recursive https://github.com/naver/dust3r /path/to/dust3r && "
                          "pip install -r /path/to/dust3r/requirements.txt, then set teacher.repo=/path/to/dust3r "
                          "(or PMSPLAT_DUST3R_REPO=/path/to/dust3r)",
                          identity_excludes=("device", "repo", "progress")),
    "da3": TeacherSpec("pmsplat.teachers.da3", "DA3Teacher", "DA3TeacherCfg", "pip install depth-anything-3 addict"),
    "synthetic": TeacherSpec("pmsplat.teachers.synthetic", "SyntheticTeacher", "SyntheticTeacherCfg",
                             "ground-truth pointmaps (synthetic benchmark, dataset.load_pointmap=true)", needs_pointmap=True),
    "cache": TeacherSpec("pmsplat.teachers.cache", "CacheTeacher", "CacheTeacherCfg",
                         "a cache folder written by `pmsplat teacher precompute`"),
    "tensor": TeacherSpec("pmsplat.teachers.tensor", "TensorTeacher", None, "pmsplat.teachers.tensor"),
}


def available_teachers() -> list[str]:
    """Registered teacher names (whether or not their optional packages are installed)."""
    return sorted(TEACHERS)


def _plain(cfg: Any) -> dict:
    """A plain dict from a dict, an OmegaConf config or a dataclass config."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        for name, spec in TEACHERS.items():
            if spec.config_name and type(cfg).__name__ == spec.config_name and type(cfg).__module__ == spec.module:
                return {"name": name, **dataclasses.asdict(cfg)}
        values = dataclasses.asdict(cfg)
        if "name" not in values:
            raise InputError(f"build_teacher: a {type(cfg).__name__} is not a teacher config and has no 'name' field.")
        return values
    cfg = _containers(cfg)
    if not isinstance(cfg, dict):
        raise InputError(f"build_teacher: the teacher config must be a mapping with a 'name' key, got {type(cfg).__name__}.")
    return dict(cfg)


def _containers(value: Any) -> Any:
    """OmegaConf DictConfig / ListConfig (at any depth, e.g. inside a plain dict) -> dict / list."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {key: _containers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_containers(item) for item in value)
    return value


def split_config(cfg: Any) -> tuple[str, TeacherSpec, dict]:
    """(name, spec, options) of a teacher config; unknown names are an :class:`InputError`."""
    values = _plain(cfg)
    name = values.pop("name", None)
    if name not in TEACHERS:
        raise InputError(
            f"Unknown teacher {name!r} (teacher.name). Choose one of {available_teachers()}."
            if name is not None
            else f"The teacher config has no 'name'; set teacher.name to one of {available_teachers()}."
        )
    return name, TEACHERS[name], values


def _config_class(spec: TeacherSpec, name: str):
    module = import_module(spec.module)
    return module, (getattr(module, spec.config_name) if spec.config_name else None)


def teacher_config(cfg: Any):
    """(name, dataclass config instance) of a teacher config, options checked against the
    dataclass fields (lists become tuples where the field is a tuple, strings become Paths,
    integers become floats where the field is a float)."""
    import dacite

    name, spec, options = split_config(cfg)
    try:
        _, config_class = _config_class(spec, name)
    except ModuleNotFoundError as error:
        if error.name == spec.module:
            raise InputError(f"Teacher {name!r} is not available in this pmsplat tree ({spec.module} is missing).") from error
        raise
    if config_class is None:
        return name, options
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise InputError(f"Unknown option(s) {unknown} for teacher {name!r}; valid options: {sorted(fields)}.")
    try:
        instance = dacite.from_dict(
            config_class, options, config=dacite.Config(cast=[tuple, Path], strict=True, type_hooks={float: _int_to_float})
        )
    except (dacite.DaciteError, TypeError, ValueError) as error:
        raise InputError(f"Invalid options for teacher {name!r}: {error}") from error
    return name, instance


def _int_to_float(value: Any) -> Any:
    """YAML / command-line ``0`` for a float option is 0.0 (bools stay bools and fail the check)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return value


def teacher_identity(cfg: Any) -> dict:
    """Canonical, JSON-serialisable identity of a teacher config: its name and *all* its
    resolved options (defaults filled in), minus those that do not change the output
    (``device``). Two configs producing the same pointmaps have equal identities."""
    name, instance = teacher_config(cfg)
    options = dataclasses.asdict(instance) if dataclasses.is_dataclass(instance) else dict(instance)
    for excluded in TEACHERS[name].identity_excludes:
        options.pop(excluded, None)
    return {"name": name, "options": _jsonable(options)}


def build_teacher(cfg: Any, **components: Any) -> Teacher:
    """Build the teacher a config names. ``components`` are passed to the constructor (e.g.
    ``model=`` an already-built network for vggt/dust3r/da3, used by tests and by callers that
    hold the weights themselves). Raises :class:`InputError` for unknown names/options and the
    teacher's own :class:`MissingDependencyError` (with the pip command) or
    :class:`MissingWeightsError` when its package or weights are missing."""
    name, instance = teacher_config(cfg)
    spec = TEACHERS[name]
    module = import_module(spec.module)
    teacher_class = getattr(module, spec.class_name)
    if spec.config_name is None:
        return teacher_class(**instance, **components)
    return teacher_class(instance, **components)


def needs_pointmap(cfg: Any) -> bool:
    """Whether the teacher reads ground-truth pointmaps from ``context["pointmap"]``."""
    return split_config(cfg)[1].needs_pointmap
