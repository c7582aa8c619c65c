"""The on-disk layout the patch manager works on: manifest, series files, pristine listings.

::

    patches/manifest.json              per baseline: owned paths, upstream(s), pristine tree hash
    patches/<baseline>/series          patch file names in application order ('#' comments allowed)
    patches/<baseline>/NNNN-name.patch unified diffs, paths relative to the repository root (-p1)
    patches/<baseline>/pristine.sha256 '<sha256>  <path>' per file of the pristine (unpatched) tree
    patches/.cache/                    content-addressed copies of pristine files (git-ignored)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pmsplat.patching.errors import ManifestError, PatchError
from pmsplat.patching.tree import is_ignored, parse_listing, read_tree
from pmsplat.patching.gitdiff import Patch, parse_patch

MANIFEST_PATH = "patches/manifest.json"
FORMAT_VERSION = 1
PATCH_NAME = re.compile(r"^\d{4}-[A-Za-z0-9][A-Za-z0-9._-]*\.patch$")
BASELINE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Upstream:
    """A repository a baseline mirrors, at a release commit, and which part of it."""

    repository: str
    commit: str
    mirrors: str = ""


@dataclass(frozen=True)
class BaselineSpec:
    """One manifest entry. ``paths`` are repository-relative folders/files the baseline owns."""

    name: str
    paths: tuple[str, ...]
    upstream: tuple[Upstream, ...]
    pristine_sha256: str
    pristine_files: int


@dataclass(frozen=True)
class SeriesEntry:
    """A patch of a series: its file name (e.g. ``0001-pm-loss.patch``) and parsed content."""

    name: str
    patch: Patch


@dataclass
class Manifest:
    description: str
    baselines: dict[str, BaselineSpec]

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.is_file():
            raise ManifestError(f"{path} does not exist: the patch manager needs its manifest there "
                                "(see patches/README.md for the format)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"{path}: expected an object with \"format_version\": {FORMAT_VERSION}")
        entries = data.get("baselines")
        if not isinstance(entries, dict) or not entries:
            raise ManifestError(f"{path}: \"baselines\" must be a non-empty object")
        baselines = {name: _parse_baseline(path, name, entry) for name, entry in entries.items()}
        _check_disjoint(path, baselines)
        return cls(str(data.get("description", "")), baselines)

    def to_json(self) -> str:
        data = {
            "format_version": FORMAT_VERSION,
            "description": self.description,
            "baselines": {
                spec.name: {
                    "paths": list(spec.paths),
                    "upstream": [
                        {"repository": u.repository, "commit": u.commit, "mirrors": u.mirrors}
                        for u in spec.upstream
                    ],
                    "pristine": {"sha256": spec.pristine_sha256, "files": spec.pristine_files},
                }
                for spec in self.baselines.values()
            },
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _parse_baseline(path: Path, name: str, entry: object) -> BaselineSpec:
    where = f"{path}: baseline {name!r}"
    if not BASELINE_NAME.match(name):
        raise ManifestError(f"{where}: names are lower-case identifiers (e.g. 'mvsplat')")
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} must be an object")
    paths = entry.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ManifestError(f"{where}: \"paths\" must be a non-empty list of repository-relative paths")
    for owned in paths:
        if owned.startswith("/") or ".." in owned.split("/") or owned.endswith("/") or owned == ".":
            raise ManifestError(f"{where}: path {owned!r} must be relative, without '..' or a trailing '/'")
    upstream = entry.get("upstream", [])
    if not isinstance(upstream, list) or not all(
        isinstance(u, dict) and isinstance(u.get("repository"), str) and isinstance(u.get("commit"), str)
        for u in upstream
    ):
        raise ManifestError(f"{where}: \"upstream\" must be a list of {{repository, commit, mirrors}}")
    pristine = entry.get("pristine")
    if not (isinstance(pristine, dict) and isinstance(pristine.get("sha256"), str)
            and isinstance(pristine.get("files"), int)):
        raise ManifestError(f"{where}: \"pristine\" must be {{\"sha256\": str, \"files\": int}}; "
                            f"run `pmsplat patches record-pristine {name}` to fill it")
    return BaselineSpec(
        name=name,
        paths=tuple(paths),
        upstream=tuple(Upstream(u["repository"], u["commit"], str(u.get("mirrors", ""))) for u in upstream),
        pristine_sha256=pristine["sha256"],
        pristine_files=pristine["files"],
    )


def _check_disjoint(path: Path, baselines: dict[str, BaselineSpec]) -> None:
    owners: list[tuple[str, str]] = [(p, spec.name) for spec in baselines.values() for p in spec.paths]
    for i, (a, owner_a) in enumerate(owners):
        for b, owner_b in owners[i + 1:]:
            if a == b or b.startswith(a + "/") or a.startswith(b + "/"):
                raise ManifestError(f"{path}: {a!r} ({owner_a}) and {b!r} ({owner_b}) overlap; every "
                                    "file must belong to at most one baseline")


def find_root(explicit: Path | None = None) -> Path:
    """The repository root: ``explicit``, else the checkout this package lives in, else the cwd or
    one of its parents — the first folder that holds ``patches/manifest.json``."""
    if explicit is not None:
        root = explicit.resolve()
        if not (root / MANIFEST_PATH).is_file():
            raise ManifestError(f"{root} has no {MANIFEST_PATH}; pass the pmsplat repository root to --root")
        return root
    package_checkout = Path(__file__).resolve().parents[3]
    for candidate in [package_checkout, *[Path.cwd(), *Path.cwd().parents]]:
        if (candidate / MANIFEST_PATH).is_file():
            return candidate
    raise ManifestError(f"cannot find {MANIFEST_PATH} next to the pmsplat package ({package_checkout}) nor "
                        "in the current folder or its parents; pass --root PATH_TO_THE_REPOSITORY")


class Repository:
    """The repository root plus its loaded manifest; reads series, listings and trees."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = Manifest.load(root / MANIFEST_PATH)

    @property
    def names(self) -> list[str]:
        return list(self.manifest.baselines)

    @property
    def cache_dir(self) -> Path:
        return self.root / "patches" / ".cache"

    def spec(self, name: str) -> BaselineSpec:
        if name not in self.manifest.baselines:
            raise ManifestError(f"unknown baseline {name!r}; the manifest declares: {', '.join(self.names)}")
        return self.manifest.baselines[name]

    def select(self, names: list[str] | None) -> list[str]:
        """The named baselines (validated), or all of them when ``names`` is empty/None."""
        if not names:
            return self.names
        return [self.spec(name).name for name in names]

    def patch_dir(self, name: str) -> Path:
        return self.root / "patches" / name

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def series_names(self, name: str) -> list[str]:
        series_file = self.patch_dir(name) / "series"
        if not series_file.is_file():
            raise ManifestError(f"{self.relative(series_file)} does not exist; create it (an empty file "
                                "means an empty series)")
        names = [line.strip() for line in series_file.read_text(encoding="utf-8").splitlines()]
        names = [entry for entry in names if entry and not entry.startswith("#")]
        for entry in names:
            if not PATCH_NAME.match(entry):
                raise ManifestError(f"{self.relative(series_file)}: {entry!r} is not a patch name of the form "
                                    "NNNN-short-name.patch")
        duplicates = sorted({entry for entry in names if names.count(entry) > 1})
        if duplicates:
            raise ManifestError(f"{self.relative(series_file)} lists {', '.join(duplicates)} more than once")
        return names

    def series(self, name: str) -> list[SeriesEntry]:
        """The parsed series; every listed patch must exist and only touch files the baseline owns,
        and every ``*.patch`` in the folder must be listed (nothing is silently ignored)."""
        spec = self.spec(name)
        names = self.series_names(name)
        folder = self.patch_dir(name)
        unlisted = sorted(p.name for p in folder.glob("*.patch") if p.name not in names)
        if unlisted:
            raise ManifestError(f"{self.relative(folder)} holds patch files not listed in its series: "
                                f"{', '.join(unlisted)}; add them to the series or delete them")
        entries: list[SeriesEntry] = []
        for entry in names:
            path = folder / entry
            if not path.is_file():
                raise ManifestError(f"{self.relative(folder / 'series')} lists {entry}, which does not exist")
            patch = parse_patch(path.read_bytes().decode("utf-8"), source=self.relative(path))
            for target in patch.paths:
                if not self.owns(spec, target):
                    raise PatchError(f"{self.relative(path)} changes {target}, which is outside the paths "
                                     f"baseline {name!r} owns ({', '.join(spec.paths)}); move the change to "
                                     "the right baseline's series or extend its paths in the manifest")
                if is_ignored(target):
                    raise PatchError(f"{self.relative(path)} changes {target}, a cache file the patch "
                                     "manager ignores; remove that section from the patch")
            entries.append(SeriesEntry(entry, patch))
        return entries

    def listing_path(self, name: str) -> Path:
        return self.patch_dir(name) / "pristine.sha256"

    def listing(self, name: str) -> dict[str, str]:
        path = self.listing_path(name)
        if not path.is_file():
            raise ManifestError(f"{self.relative(path)} does not exist; record the pristine tree with "
                                f"`pmsplat patches record-pristine {name}`")
        return parse_listing(path.read_text(encoding="utf-8"), self.relative(path))

    def tree(self, name: str) -> dict[str, bytes]:
        return read_tree(self.root, self.spec(name).paths)

    @staticmethod
    def owns(spec: BaselineSpec, path: str) -> bool:
        return any(path == owned or path.startswith(owned + "/") for owned in spec.paths)
