"""Completeness and integrity check of an offline teacher cache (``pmsplat teacher verify``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pmsplat.errors import DataError
from pmsplat.teachers import cache_store as store


@dataclass
class VerifyReport:
    """Result of :func:`verify_cache`. ``ok`` when every listed scene is present and intact
    (skipped scenes count as present) and, if a dataset was given, the dataset is unchanged."""

    scenes: int = 0
    complete: int = 0
    skipped: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    leftover_temporary_files: list[str] = field(default_factory=list)
    stale: str | None = None
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt and self.stale is None

    def lines(self) -> list[str]:
        status = "OK" if self.ok else "FAILED"
        lines = [
            f"{status}: {self.complete}/{self.scenes} scenes complete ({self.skipped} skipped by the loader), "
            f"{self.bytes / 1e6:.1f} MB"
        ]
        if self.missing:
            lines.append(f"missing {len(self.missing)} scene(s): {self.missing[:8]}{' ...' if len(self.missing) > 8 else ''}"
                         " — run `pmsplat teacher precompute` again (it resumes)")
        for problem in self.corrupt[:20]:
            lines.append(f"corrupt: {problem}")
        if self.stale:
            lines.append(f"stale: {self.stale}")
        if self.leftover_temporary_files:
            lines.append(f"{len(self.leftover_temporary_files)} temporary file(s) of interrupted or running writers "
                         f"(safe to delete when no precompute is running): {self.leftover_temporary_files[:4]}")
        return lines


def verify_cache(
    path: Path,
    dataset_roots: list[Path] | None = None,
    checksums: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check that every scene of the cache's scene list has a record and an intact data file
    (size; with ``checksums`` the sha256 of the whole file), and with ``dataset_roots`` that the
    dataset still has the fingerprint the cache was built from."""
    path = Path(path)
    manifest = store.read_manifest(path)
    scenes = store.read_json(path / store.SCENE_LIST, "Teacher-cache scene list")
    if not isinstance(scenes, list) or len(scenes) != manifest["dataset"]["scenes"]:
        raise DataError(f"{path / store.SCENE_LIST} does not list the manifest's {manifest['dataset']['scenes']} scenes; the cache is corrupt.")
    report = VerifyReport(scenes=len(scenes))
    for position, scene in enumerate(scenes):
        try:
            record = store.read_record(path, scene)
        except DataError as error:
            report.corrupt.append(str(error))
            continue
        if record is None:
            report.missing.append(scene)
        elif record.get("status") == "skipped":
            report.skipped += 1
            report.complete += 1
        else:
            data_path = path / store.SCENE_DIR / record["file"]
            if not data_path.is_file():
                report.missing.append(scene)
            elif data_path.stat().st_size != record["bytes"]:
                report.corrupt.append(f"{data_path} ({scene!r}): {data_path.stat().st_size} bytes, record says {record['bytes']}")
            elif checksums and store.sha256_file(data_path) != record["sha256"]:
                report.corrupt.append(f"{data_path} ({scene!r}): sha256 differs from its record")
            else:
                report.complete += 1
                report.bytes += record["bytes"]
        if progress is not None:
            progress(position + 1, len(scenes))
    report.leftover_temporary_files = sorted(p.name for p in path.rglob(f"*{store.TMP_MARK}*"))
    if dataset_roots is not None:
        from pmsplat.teachers.cache import CacheTeacher, CacheTeacherCfg

        try:
            CacheTeacher(CacheTeacherCfg(path=path, dataset_roots=list(dataset_roots)))
        except DataError as error:
            report.stale = str(error)
    return report
