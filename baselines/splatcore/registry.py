"""The baseline registry: which encoders exist, which baseline each belongs to, and their presets.

The shared core never names a baseline. Each baseline package registers its encoders when it is
imported (``baselines/<name>/registration.py``, imported by the package's ``__init__``)::

    register_encoder(EncoderSpec(name="costvolume", baseline="mvsplat", config_class=...,
                                 encoder_class=..., validate=check_run))

and the core imports baseline packages by the names the Hydra tree gives: the selected
``baseline=<name>`` (the package of that name), and, to name the right baseline in an error, every
option of the ``baseline/`` config group (:func:`discover_baselines`). Adding a baseline is its
package (registering its encoders) plus ``config/baseline/<name>.yaml`` (``baseline: <name>``) and
its ``config/model/encoder/*.yaml``; no core file changes.

Presets (``EncoderSpec.presets``: preset name -> a function returning the encoder config) are the
one home of a model size's numbers; :func:`store_presets` publishes each as a Hydra option
``model/encoder=<baseline>_<preset>`` (Hydra's ConfigStore), so no YAML copies them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class EncoderSpec:
    """One registered encoder.

    name: ``model.encoder.name`` (upstream's key, e.g. ``costvolume``); baseline: the package that
    owns it (what ``baseline=`` selects); config_class: its dataclass config (built from
    ``model.encoder`` with unknown keys ignored, as upstream); encoder_class: called with the
    config; presets: preset name -> ``() -> config`` (published as ``model/encoder=<option>``, the
    option name being ``<baseline>_<preset>`` unless ``preset_options`` maps it); validate:
    ``(run_config) -> None`` raising :class:`ConfigError` for combinations this baseline
    cannot run (called at start-up with the whole typed run config)."""

    name: str
    baseline: str
    config_class: type
    encoder_class: Callable[[Any], Any]
    presets: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    preset_options: Mapping[str, str] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None

    def option(self, preset: str) -> str:
        """The ``model/encoder=`` option of a preset."""
        return self.preset_options.get(preset, f"{self.baseline}_{preset}")


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Register an encoder (idempotent for the same spec; a different one under a taken name is
    an error)."""
    known = ENCODERS.get(spec.name)
    if known is not None and known != spec:
        raise ConfigError(f"an encoder named {spec.name!r} is already registered by baseline {known.baseline!r}")
    ENCODERS[spec.name] = spec
    return spec


def registered_baselines() -> list[str]:
    """Names of the baselines whose encoders are registered (imported so far), sorted."""
    return sorted({spec.baseline for spec in ENCODERS.values()})


# Baseline names seen as options of the Hydra `baseline/` group (filled by compose_config).
_DISCOVERED: set[str] = set()


def discover_baselines(names: Iterable[str]) -> None:
    """Remember baseline package names (the options of the ``baseline/`` config group)."""
    _DISCOVERED.update(str(name) for name in names)


def import_baseline(name: str) -> None:
    """Import the package of a baseline so that it registers its encoders."""
    try:
        import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise ConfigError(
            f"baseline={name}: no package {name!r} is installed (a baseline is a package that registers its "
            "encoders with splatcore.registry.register_encoder)"
        ) from error


def import_baselines(names: Iterable[str] = ()) -> list[str]:
    """Import the given baselines and every discovered one; returns the registered baselines."""
    for name in sorted({*names, *_DISCOVERED}):
        import_baseline(name)
    return registered_baselines()


def encoder_spec(name: Any, baseline: str | None = None) -> EncoderSpec:
    """The spec of ``model.encoder.name``, importing ``baseline`` (then every discovered
    baseline) until it is registered."""
    if name not in ENCODERS and baseline is not None:
        import_baseline(baseline)
    if name not in ENCODERS:
        import_baselines()
    if name not in ENCODERS:
        known = ", ".join(f"{n} ({s.baseline})" for n, s in sorted(ENCODERS.items()))
        raise ConfigError(f"model.encoder.name={name!r} is unknown; registered encoders: {known}")
    return ENCODERS[name]


def encoder_config(values: Mapping[str, Any], baseline: str | None = None) -> Any:
    """The encoder's dataclass config from the ``model.encoder`` mapping (extra keys ignored)."""
    import dacite

    from .config_types import check_field_types

    spec = encoder_spec(values.get("name"), baseline)
    check_field_types(spec.config_class, values, "model.encoder")
    return dacite.from_dict(spec.config_class, dict(values), config=dacite.Config(strict=False, cast=[float]))


def build_encoder_from_config(config: Any) -> Any:
    """The encoder module of a typed encoder config."""
    return ENCODERS[config.name].encoder_class(config)


def store_presets() -> None:
    """Publish every registered preset as a ``model/encoder`` option in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for spec in ENCODERS.values():
        for preset, make in spec.presets.items():
            store.store(group="model/encoder", name=spec.option(preset), node=dataclasses.asdict(make()))


__all__ = [
    "ENCODERS",
    "EncoderSpec",
    "build_encoder_from_config",
    "discover_baselines",
    "encoder_config",
    "encoder_spec",
    "import_baselines",
    "register_encoder",
    "registered_baselines",
    "store_presets",
]
