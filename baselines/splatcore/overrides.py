"""Hydra overrides that hold paths: quoting is the program's job, not the user's.

Hydra's override grammar gives meaning to spaces, parentheses, commas, ``=``, quotes, brackets and
``${...}``, so ``output_dir=/data/my runs (v2)`` fails in its lexer. :func:`quote` writes any string
as one Hydra single-quoted string (backslashes and quotes escaped, ``${`` kept literal) and
:func:`path_override` builds ``key='<path>'`` with it; every override the program builds from a path
goes through them. :func:`quote_path_overrides` accepts what a user typed: an override of a known
path key (:data:`PATH_KEYS`, also as ``+key`` / ``++key``) whose value Hydra cannot parse is quoted
(a list value of ``dataset.roots`` element by element); any other override is passed unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

PATH_KEYS = (
    "output_dir",
    "checkpointing.load",
    "checkpointing.pretrained_model",
    "checkpointing.pretrained_monodepth",
    "checkpointing.pretrained_mvdepth",
    "checkpointing.pretrained_depth",
    "test.output_path",
    "dataset.error_data_path",
    "dataset.view_sampler.index_path",
    "teacher.cache_dir",
    "teacher.weights",
)
LIST_PATH_KEYS = ("dataset.roots",)

# characters that are safe unquoted in Hydra's grammar (a primitive value)
_PLAIN = re.compile(r"[A-Za-z0-9_./\-+:@%~]*")


def quote(value: str | os.PathLike) -> str:
    """``value`` as one Hydra single-quoted string: ``'<value>'`` with ``'`` escaped (and the
    backslashes before a quote or the end doubled, Hydra's rule) and ``${`` escaped, so that the
    config holds exactly ``value`` (never an interpolation)."""
    text = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), str(value))
    return "'" + text.replace("${", "\\${") + "'"


def path_value(value: str | os.PathLike) -> str:
    """``value`` as it can be written after ``key=``: unchanged when it is plain, quoted otherwise."""
    text = str(value)
    return text if text and _PLAIN.fullmatch(text) else quote(text)


def path_override(key: str, value: str | os.PathLike) -> str:
    """``key=<value>`` with the path quoted for Hydra when it needs it."""
    return f"{key}={path_value(value)}"


def list_override(key: str, values: Iterable[str | os.PathLike]) -> str:
    """``key=[<v1>,<v2>]`` with each path quoted for Hydra when it needs it."""
    return f"{key}=[{','.join(path_value(v) for v in values)}]"


def unquote(value: str) -> str:
    """The string a path value written by :func:`path_value` stands for (a plain value unchanged)."""
    if not (len(value) >= 2 and value[0] == value[-1] == "'"):
        return value
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"key={value}"])[0].value()
    return str(parsed).replace("\\${", "${")


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([override])
    except Exception:  # the lexer/parser's errors (HydraException, OverrideParseException, ...)
        return False
    return True


def _split_key(override: str) -> tuple[str, str, str] | None:
    """(prefix, key, value) of ``[+|++]key=value``, or None."""
    match = re.fullmatch(r"(\+{0,2}|~)([A-Za-z0-9_.]+)=(.*)", override, flags=re.S)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _list_items(inner: str) -> list[str]:
    """The paths inside ``[...]`` as a user typed them: the whole text when it is one existing
    path, else split at commas."""
    if Path(inner).exists() or "," not in inner:
        return [inner]
    return [item.strip() for item in inner.split(",")]


def quote_path_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides with every unparsable value of a known path key quoted (see the module
    docstring); everything else unchanged (Hydra then reports what is wrong with it)."""
    out = []
    for override in overrides:
        parts = _split_key(override)
        if parts is None or _parses(override):
            out.append(override)
            continue
        prefix, key, value = parts
        if key in PATH_KEYS:
            out.append(prefix + path_override(key, value))
        elif key in LIST_PATH_KEYS and value.startswith("[") and value.endswith("]"):
            out.append(prefix + list_override(key, _list_items(value[1:-1])))
        else:
            out.append(override)
    return out


__all__ = ["LIST_PATH_KEYS", "PATH_KEYS", "list_override", "path_override", "path_value", "quote", "quote_path_overrides", "unquote"]
