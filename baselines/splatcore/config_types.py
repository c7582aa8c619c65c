"""Type checks of config values against a config dataclass's annotations, before anything is built.

A wrong value (``trainer.max_steps=abc``, ``optimizer.lr=abc``, ``trainer.max_steps=2.5``) is one
ConfigError naming the key, the value, the expected type and an example, instead of a TypeError
or ValueError from deep inside a constructor. Only the annotation forms the configs use are
checked (bool, int, float, str, Path, Literal, X | None, unions of these, list[...]); anything
else (Any, dicts) is left to the dataclass itself; a nested dataclass field given as a mapping is
checked key by key (``model.encoder.gaussian_adapter.sh_degree``).
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal, Union

from .errors import ConfigError

_EXAMPLES = {bool: "true", int: "10", float: "0.001", str: "name", Path: "path/to/file"}


def _accepts(kind: Any, value: Any) -> bool | None:
    """True / False when ``value`` fits annotation ``kind``; None when ``kind`` is not checked."""
    origin = typing.get_origin(kind)
    if kind is Any or kind is object:
        return None
    if origin in (Union, types.UnionType):
        answers = [_accepts(option, value) for option in typing.get_args(kind)]
        if any(answer is None for answer in answers):
            return None
        return any(answers)
    if kind is type(None):
        return value is None
    if origin is Literal:
        return value in typing.get_args(kind)
    if origin in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is Path:
        return isinstance(value, (str, Path))
    return None


def _describe(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(kind))
    if origin is Literal:
        return "one of " + ", ".join(repr(option) for option in typing.get_args(kind))
    if kind is type(None):
        return "null"
    if origin is not None:
        return f"a list ({kind})".replace("typing.", "")
    return getattr(kind, "__name__", str(kind))


def _example(kind: Any, default: Any) -> str:
    sentinel = isinstance(default, (int, float)) and not isinstance(default, bool) and default < 0  # -1 = "off"
    if default is not MISSING and default is not None and not sentinel and not isinstance(default, (list, dict)):
        return str(default).lower() if isinstance(default, bool) else str(default)
    origin = typing.get_origin(kind)
    options = typing.get_args(kind) if origin in (Union, types.UnionType) else (kind,)
    for option in options:
        if typing.get_origin(option) is Literal:
            return str(typing.get_args(option)[0])
        if option in _EXAMPLES:
            return _EXAMPLES[option]
    return "[...]"


def check_field_types(cls: type, values: Mapping[str, Any] | None, prefix: str) -> None:
    """Raise ConfigError for the first known key of ``values`` whose value does not fit the type of
    ``cls``'s field of that name (``prefix`` is the config group, e.g. ``"optimizer"``)."""
    if not values or not is_dataclass(cls):
        return
    hints = typing.get_type_hints(cls)
    for field in fields(cls):
        if field.name not in values or field.name not in hints:
            continue
        value, kind = values[field.name], hints[field.name]
        key = f"{prefix}.{field.name}" if prefix else field.name
        if is_dataclass(kind) and isinstance(value, Mapping):
            check_field_types(kind, value, key)  # a nested group, e.g. model.encoder.gaussian_adapter
            continue
        if _accepts(kind, value) is False:
            default = field.default if field.default is not MISSING else MISSING
            raise ConfigError(
                f"{key}={value!r} ({type(value).__name__}) is not valid: {key} expects {_describe(kind)}, "
                f"e.g. {key}={_example(kind, default)}."
            )
