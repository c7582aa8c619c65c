"""The teacher registry: build any pointmap teacher from a config (what the Hydra ``teacher=``
group composes), and the canonical identity of a teacher config (what the offline cache pins).

A teacher registers itself with the :func:`register_teacher` class decorator (name, config
dataclass, install hint)::

    @register_teacher("vggt", VGGTTeacherCfg, install='pip install "vggt @ git+..."')
    class VGGTTeacher: ...

Every module of the ``pmsplat.teachers`` package is imported when the registry is first asked
(teacher modules import their optional packages only when a teacher is built), and so is every
module named by a ``module:`` key of a ``teacher/*.yaml`` of the config directory
(``$PMSPLAT_CONFIG_DIR`` or the repository's ``config/``). Adding a teacher is therefore one module
(in ``src/pmsplat/teachers/``, or anywhere importable when its YAML says ``module: <import path>``)
plus ``config/teacher/<name>.yaml``; every list of teacher names (CLI choices, the reproduction
protocol, messages) is :func:`available_teachers`.

A teacher config is a mapping ``{name: <teacher>, <option>: <value>, ...}`` (a dict, an OmegaConf
``DictConfig``, or one of the teachers' dataclass configs). The options are the fields of the
teacher's dataclass config; unknown names and unknown options are errors naming the valid ones.
``module`` is reserved (where the teacher lives) and is not an option.

A missing optional package surfaces as :class:`~pmsplat.errors.MissingDependencyError` whose
message carries the pip command (``TEACHERS[name].install``, what ``pmsplat teacher list``
prints); nothing is imported or downloaded before ``build_teacher`` runs.
"""

from __future__ import annotations

import dataclasses
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from pmsplat.errors import InputError
from pmsplat.teachers.base import Teacher

RESERVED_KEYS = ("name", "module")


@dataclass(frozen=True)
class TeacherSpec:
    """A registered teacher. ``install`` is the one-line requirement shown in errors and docs;
    ``needs_pointmap``: the teacher reads ground-truth pointmaps from ``context["pointmap"]``;
    ``real``: a learned model usable on real data (not a stand-in such as the synthetic or tensor
    teacher); ``check_run(config)``: a start-up check of a training run's teacher config (raises
    :class:`InputError`), called by the PM-Loss adapter before any data is read."""

    name: str
    teacher_class: type
    config_class: type | None
    install: str
    needs_pointmap: bool = False
    identity_excludes: tuple[str, ...] = ("device",)
    real: bool = True
    check_run: Callable[[Any], None] | None = None

    @property
    def module(self) -> str:
        return self.teacher_class.__module__

    @property
    def class_name(self) -> str:
        return self.teacher_class.__name__

    @property
    def config_name(self) -> str | None:
        return None if self.config_class is None else self.config_class.__name__


TEACHERS: dict[str, TeacherSpec] = {}


def register_teacher(
    name: str,
    config: type | None = None,
    *,
    install: str,
    needs_pointmap: bool = False,
    identity_excludes: tuple[str, ...] = ("device",),
    real: bool = True,
    check_run: Callable[[Any], None] | None = None,
) -> Callable[[type], type]:
    """Class decorator registering a teacher under ``name``. ``config``: its dataclass config (the
    class is then called with an instance), or None (called with the options as keywords)."""

    def decorate(teacher_class: type) -> type:
        spec = TeacherSpec(name, teacher_class, config, install, needs_pointmap, tuple(identity_excludes), real, check_run)
        known = TEACHERS.get(name)
        if known is not None and known.teacher_class.__qualname__ != teacher_class.__qualname__:
            raise InputError(f"a teacher named {name!r} is already registered ({known.module}.{known.class_name}).")
        TEACHERS[name] = spec
        return teacher_class

    return decorate


_PACKAGE_LOADED = False
_SCANNED_DIRS: set[Path] = set()


def _config_dir() -> Path:
    from splatcore.config_dir import config_directory

    return config_directory()


def load_teachers() -> None:
    """Import every teacher module: the ``pmsplat.teachers`` package's, then those named by the
    ``module:`` key of the config directory's ``teacher/*.yaml`` (each directory scanned once)."""
    global _PACKAGE_LOADED
    if not _PACKAGE_LOADED:
        import pmsplat.teachers as package

        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "registry":
                import_module(f"{package.__name__}.{info.name}")
        _PACKAGE_LOADED = True
    directory = _config_dir() / "teacher"
    if directory in _SCANNED_DIRS or not directory.is_dir():
        return
    from omegaconf import OmegaConf

    for path in sorted(directory.glob("*.yaml")):
        module = OmegaConf.load(path).get("module")
        if module:
            import_module(str(module))
    _SCANNED_DIRS.add(directory)


def available_teachers() -> list[str]:
    """Registered teacher names (whether or not their optional packages are installed)."""
    load_teachers()
    return sorted(TEACHERS)


def real_teachers() -> list[str]:
    """Registered teachers that run on real data (learned models and the cache)."""
    load_teachers()
    return sorted(name for name, spec in TEACHERS.items() if spec.real)


def configurable_teachers() -> list[str]:
    """Registered teachers that the Hydra tree can select (``teacher=<name>``: a
    ``teacher/<name>.yaml`` in the config directory), e.g. for ``pmsplat reproduce --teacher``."""
    load_teachers()
    directory = _config_dir() / "teacher"
    return sorted(name for name in TEACHERS if (directory / f"{name}.yaml").is_file())


def teacher_spec(name: str | None) -> TeacherSpec:
    """The spec of a registered teacher (InputError naming the registered ones otherwise)."""
    load_teachers()
    if name not in TEACHERS:
        raise InputError(
            f"Unknown teacher {name!r} (teacher.name). Choose one of {available_teachers()}."
            if name is not None
            else f"The teacher config has no 'name'; set teacher.name to one of {available_teachers()}."
        )
    return TEACHERS[name]


def _plain(cfg: Any) -> dict:
    """A plain dict from a dict, an OmegaConf config or a dataclass config."""
    if isinstance(cfg, TeacherConfig):
        return cfg.to_dict()
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        load_teachers()
        for name, spec in TEACHERS.items():
            if spec.config_class is not None and type(cfg) is spec.config_class:
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
    values.pop("module", None)
    return name, teacher_spec(name), values


def teacher_name(cfg: Any) -> str:
    """The registered name of a teacher config (a mapping, or a typed :class:`TeacherConfig`)."""
    if isinstance(cfg, TeacherConfig):
        return cfg.name
    return split_config(cfg)[0]


def teacher_config(cfg: Any):
    """(name, dataclass config instance) of a teacher config, options checked against the
    dataclass fields (lists become tuples where the field is a tuple, strings become Paths,
    integers become floats where the field is a float)."""
    import dacite

    if isinstance(cfg, TeacherConfig):
        return cfg.name, cfg.options
    name, spec, options = split_config(cfg)
    config_class = spec.config_class
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


@dataclass(frozen=True, eq=False)
class TeacherConfig(Mapping):
    """A teacher config parsed once: its registered ``name`` and typed ``options`` (the teacher's
    dataclass config, or a dict of keyword arguments for a teacher without one). Accepted
    everywhere a teacher config mapping is, and read as one (``cfg["name"]``, ``cfg["seed"]``)."""

    name: str
    options: Any

    @classmethod
    def parse(cls, cfg: Any) -> "TeacherConfig":
        if isinstance(cfg, TeacherConfig):
            return cfg
        return cls(*teacher_config(cfg))

    @property
    def spec(self) -> TeacherSpec:
        return teacher_spec(self.name)

    @property
    def needs_pointmap(self) -> bool:
        return self.spec.needs_pointmap

    def check_run(self) -> None:
        """The teacher's own start-up check (e.g. the cache exists)."""
        if self.spec.check_run is not None:
            self.spec.check_run(self.options)

    def to_dict(self) -> dict:
        """The mapping form ``{name: ..., <option>: ...}``."""
        options = dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else dict(self.options)
        return {"name": self.name, **options}

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        """Equal to another config (typed or a mapping) that parses to the same teacher and options
        (``{"name": "synthetic"}`` equals the synthetic teacher with its default options)."""
        if not isinstance(other, TeacherConfig):
            if not isinstance(other, Mapping):
                return NotImplemented
            try:
                other = TeacherConfig.parse(other)
            except InputError:
                return False
        return (self.name, self.options) == (other.name, other.options)

    __hash__ = None  # type: ignore[assignment]


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
    if spec.config_class is None:
        return spec.teacher_class(**instance, **components)
    return spec.teacher_class(instance, **components)


def needs_pointmap(cfg: Any) -> bool:
    """Whether the teacher reads ground-truth pointmaps from ``context["pointmap"]``."""
    return teacher_spec(teacher_name(cfg)).needs_pointmap
