"""Importing a teacher's optional package and naming what is *really* missing when that fails.

A real teacher's import can fail for several reasons that need different fixes:

- the teacher package itself is absent (``vggt``, ``dust3r``, ``depth_anything_3``, CroCo's
  ``models``): the registry's install instruction for that teacher;
- one of the package's own dependencies is absent (``roma``, ``addict``, ``einops``, ...): ``pip
  install <that package>``;
- ``torchvision`` is absent (the CPU setup removes it) or does not match the installed torch (a
  CUDA torchvision wheel next to CPU torch fails at import with ``operator torchvision::nms does
  not exist``): the command that installs the torchvision build matching the installed torch.

:func:`import_names` turns each case into one :class:`TeacherImportError` (a
:class:`~pmsplat.errors.MissingDependencyError`) whose message says which of them it is, keeps
the original exception as ``__cause__`` and whose ``pip_command`` is the fix.
"""

from __future__ import annotations

import importlib
import re

from pmsplat.errors import MissingDependencyError

# import name -> pip distribution, where they differ (dependencies of the teacher packages)
PIP_NAMES = {
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "huggingface_hub": "huggingface-hub",
    "pillow_heif": "pillow-heif",
}


class TeacherImportError(MissingDependencyError):
    """A teacher's package (or one of its dependencies) cannot be imported. ``package`` is what is
    missing or broken, ``pip_command`` how to fix it; the message says which case it is."""

    def __init__(self, package: str, message: str, pip_command: str):
        self.package = package
        self.pip_command = pip_command
        ImportError.__init__(self, message)


def torchvision_install_command(torch_version: str | None = None) -> str:
    """The pip command that installs the torchvision release built for the installed torch.

    torch 2.N.p pairs with torchvision 0.(N+15).p (torch 2.0 <-> torchvision 0.15, ..., 2.13 <->
    0.28). A local version tag (``+cpu``, ``+cu121``) selects that build's index on
    download.pytorch.org; plain PyPI wheels (no tag) pair with PyPI's torchvision.
    """
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    match = re.match(r"^2\.(\d+)\.(\d+)(?:[^+]*)?(?:\+(\w+))?$", str(torch_version))
    if not match:
        return f"pip install torchvision  (choose the release built for torch {torch_version})"
    minor, patch, local = int(match.group(1)), int(match.group(2)), match.group(3)
    spec = f"torchvision==0.{minor + 15}.{patch}"
    if local:
        return f"pip install {spec} --index-url https://download.pytorch.org/whl/{local}"
    return f"pip install {spec}"


def _root(name: str | None) -> str:
    return (name or "").split(".")[0]


def import_error_for(
    error: BaseException, teacher: str, own_modules: tuple[str, ...], install: str
) -> TeacherImportError | None:
    """The :class:`TeacherImportError` that names what ``error`` (raised while importing a teacher
    package) is really about, or None when it is not an import problem this module understands.

    teacher: human name ("The DUSt3R teacher"); own_modules: top-level module names that belong to
    the teacher package (missing -> ``install``); install: the teacher package's install line.
    """
    import torch

    if isinstance(error, RuntimeError):
        text = str(error)
        if "torchvision::" in text and "does not exist" in text:
            command = torchvision_install_command()
            return TeacherImportError(
                "torchvision",
                f"{teacher} imports torchvision, which is installed but broken: it was built for another torch than "
                f"the installed {torch.__version__} ({text.strip().splitlines()[0]}). Replace it with the matching "
                f"build:  pip uninstall -y torchvision && {command}",
                command,
            )
        return None
    if not isinstance(error, ImportError):
        return None
    missing = _root(getattr(error, "name", None))
    if missing == "torchvision":
        command = torchvision_install_command()
        return TeacherImportError(
            "torchvision",
            f"{teacher} imports torchvision, which is not installed (the CPU setup of pmsplat removes it). Install "
            f"the build that matches the installed torch {torch.__version__}:  {command}",
            command,
        )
    if missing and missing not in own_modules:
        package = PIP_NAMES.get(missing, missing.replace("_", "-"))
        command = f"pip install {package}"
        return TeacherImportError(
            package,
            f"{teacher}'s package is installed, but it imports '{missing}', which is not: {command}  "
            f"(original error: {error})",
            command,
        )
    return TeacherImportError(
        own_modules[0],
        f"{teacher} needs its package, which cannot be imported ({type(error).__name__}: {error}). "
        f"Install it with:  {install}",
        install,
    )


def import_names(module: str, names: list[str], teacher: str, own_modules: tuple[str, ...], install: str) -> list:
    """``[module.name for name in names]``; any import failure becomes a :class:`TeacherImportError`
    (see :func:`import_error_for`). A name missing from an importable module is reported as an
    incompatible package version."""
    try:
        imported = importlib.import_module(module)
    except (ImportError, RuntimeError) as error:
        mapped = import_error_for(error, teacher, own_modules, install)
        if mapped is None:
            raise
        raise mapped from error
    values = []
    for name in names:
        if not hasattr(imported, name):
            raise TeacherImportError(
                own_modules[0],
                f"{teacher}: {module} has no '{name}'; the installed package is a version pmsplat does not know. "
                f"Install it with:  {install}",
                install,
            )
        values.append(getattr(imported, name))
    return values
