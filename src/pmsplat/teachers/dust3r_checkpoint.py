"""Building a DUSt3R model from the architecture a checkpoint describes, without ``eval``.

Official DUSt3R checkpoints (``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth`` and the others) are
``{"model": state_dict, "args": argparse.Namespace(...)}`` where ``args.model`` is the Python
constructor call that built the network, e.g.::

    AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed',
        img_size=(512, 512), head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf),
        conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16,
        dec_embed_dim=768, dec_depth=12, dec_num_heads=12)

The upstream loader evaluates that string. Here it is parsed with :mod:`ast` instead: the call
must name an allowed class and pass only keyword arguments whose values are literals (numbers,
strings, booleans, None, tuples/lists/dicts of literals, and the names ``inf``/``nan``, signed).
Anything else (a function call, an attribute, an expression) is refused with a clear error.

For inference the official loader swaps the training patch embedding ``ManyAR_PatchEmbed``
(which transposes portrait images) for ``PatchEmbedDust3R`` and builds the heads with
``landscape_only=False``; :func:`inference_kwargs` applies the same two settings.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

from pmsplat.errors import PmsplatError

ALLOWED_CLASSES = ("AsymmetricCroCo3DStereo",)
_NAMES = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}


class ArchitectureError(PmsplatError, ValueError):
    """A checkpoint's architecture description is not a literal constructor call of an allowed class."""


def _literal(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, text)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item, text) for item in node.elts)
    if isinstance(node, ast.List):
        return [_literal(item, text) for item in node.elts]
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_literal(key, text): _literal(value, text) for key, value in zip(node.keys, node.values)}
    raise ArchitectureError(
        f"The model description {text!r} has a non-literal value `{ast.unparse(node)}`; only numbers, strings, "
        "booleans, None, inf/nan and tuples/lists/dicts of them are accepted (nothing is evaluated)."
    )


def parse_constructor_call(text: str, allowed: tuple[str, ...] = ALLOWED_CLASSES) -> tuple[str, dict[str, Any]]:
    """(class name, keyword arguments) of a constructor call string such as ``args.model`` of an
    official DUSt3R checkpoint. Raises :class:`ArchitectureError` for anything that is not
    ``Name(key=literal, ...)`` with an allowed class name."""
    if not isinstance(text, str) or not text.strip():
        raise ArchitectureError(f"The model description must be a constructor call string, got {text!r}.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ArchitectureError(f"The model description {text!r} is not a Python call ({error.msg}).") from error
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ArchitectureError(f"The model description {text!r} must be a call `ClassName(key=value, ...)`.")
    if call.func.id not in allowed:
        raise ArchitectureError(
            f"The model description builds {call.func.id!r}; pmsplat's DUSt3R teacher builds only {list(allowed)}."
        )
    if call.args:
        raise ArchitectureError(f"The model description {text!r} has positional arguments; only key=value arguments are accepted.")
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ArchitectureError(f"The model description {text!r} unpacks `**{ast.unparse(keyword.value)}`; not accepted.")
        kwargs[keyword.arg] = _literal(keyword.value, text)
    return call.func.id, kwargs


def inference_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The official loader's inference settings: ``ManyAR_PatchEmbed`` -> ``PatchEmbedDust3R`` and
    ``landscape_only=False`` (any image orientation, no transposition)."""
    adjusted = dict(kwargs)
    if adjusted.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        adjusted["patch_embed_cls"] = "PatchEmbedDust3R"
    adjusted["landscape_only"] = False
    return adjusted


def architecture_of(checkpoint: dict, path: Path, fallback: str | None) -> tuple[str, dict[str, Any], str]:
    """(class name, constructor kwargs, where the description came from) for a checkpoint file.

    Order: the checkpoint's ``args.model`` (official .pth), a ``model``/``args`` string in the
    .safetensors metadata, a ``config.json`` next to the file (Hugging Face layout: the kwargs
    as saved), then ``fallback`` (``teacher.architecture``). None of them -> a clear error.
    """
    args = checkpoint.get("args")
    description = getattr(args, "model", None) if args is not None and not isinstance(args, dict) else None
    if description is None and isinstance(args, dict):
        description = args.get("model")
    if isinstance(description, str):
        name, kwargs = parse_constructor_call(description)
        return name, inference_kwargs(kwargs), f"{path.name}: args.model"
    metadata = checkpoint.get("metadata") or {}
    for key in ("model", "args"):
        if isinstance(metadata.get(key), str) and "(" in metadata[key]:
            name, kwargs = parse_constructor_call(metadata[key])
            return name, inference_kwargs(kwargs), f"{path.name}: metadata[{key!r}]"
    config = path.with_name("config.json")
    if config.is_file():
        import json

        values = json.loads(config.read_text())
        if not isinstance(values, dict):
            raise ArchitectureError(f"{config} must hold a JSON object of constructor arguments.")
        return ALLOWED_CLASSES[0], values, str(config)
    if fallback:
        name, kwargs = parse_constructor_call(fallback)
        return name, inference_kwargs(kwargs), "teacher.architecture"
    raise ArchitectureError(
        f"DUSt3R: {path} does not say which architecture it holds (no args.model as in the official .pth "
        "checkpoints, no config.json beside it). Pass an official checkpoint, a Hugging Face model folder, or set "
        "teacher.architecture to the constructor call, e.g. "
        "\"AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(512, 512), head_type='dpt', ...)\"."
    )
