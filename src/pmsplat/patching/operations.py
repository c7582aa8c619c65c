"""The patch-manager commands as functions: each computes everything in memory, then writes once.

Every function returns the lines it wants printed; failures raise a :class:`PatchError` subclass
whose message names what is wrong and the command that fixes it. Writes go through
:func:`write_files` (all or nothing, across files, patches and baselines).
"""

from __future__ import annotations

import re
from dataclasses import replace

from pmsplat.patching.errors import PatchConflictError, PatchError, StateError, VerificationError
from pmsplat.patching.gitdiff import HunkOffset, apply_patch, diff_trees, file_kind
from pmsplat.patching.repository import MANIFEST_PATH, PATCH_NAME, Manifest, Repository, SeriesEntry
from pmsplat.patching.state import BaselineState, PristineCache, full_pristine, inspect
from pmsplat.patching.tree import format_listing, listing_hash, tree_listing, write_files

def _cache(repo: Repository) -> PristineCache:
    return PristineCache(repo.cache_dir)


def _tree_changes(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, bytes | None]:
    changes: dict[str, bytes | None] = {}
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            changes[path] = after.get(path)
    return changes


def _resolve_upto(upto: str | None, series: list[SeriesEntry], default: int, baseline: str) -> int:
    """``--upto``: a count (0..n) or a patch name (that patch is the last one applied)."""
    if upto is None:
        return default
    if upto.isdigit():
        if int(upto) > len(series):
            raise StateError(f"{baseline}: --upto {upto} but the series has only {len(series)} patch(es)")
        return int(upto)
    names = [entry.name for entry in series]
    matches = [i for i, name in enumerate(names) if name == upto or name.removesuffix(".patch") == upto]
    if not matches:
        raise StateError(f"{baseline}: --upto {upto!r} is neither a count nor a patch of the series "
                         f"({', '.join(names) or 'empty'})")
    return matches[0] + 1


def _drift_lines(state: BaselineState) -> list[str]:
    lines = []
    for drift in state.drift:
        lines.append(f"    {drift.kind:<8} {drift.path}" + (f"  ({drift.detail})" if drift.detail else ""))
    return lines


def _patch_summary(entry: SeriesEntry) -> str:
    title = next((line.strip() for line in entry.patch.description.splitlines() if line.strip()), "")
    files = len(entry.patch.files)
    counts = f"+{entry.patch.added} -{entry.patch.removed} in {files} file{'s' * (files != 1)}"
    return f"{entry.name}  {counts}" + (f"  — {title}" if title else "")


# ----------------------------------------------------------------------------------------------
# status / verify


def status(repo: Repository, names: list[str] | None = None) -> list[str]:
    out: list[str] = []
    for name in repo.select(names):
        state = inspect(repo, name, _cache(repo))
        spec = state.spec
        upstream = "; ".join(f"{u.repository} @ {u.commit}" for u in spec.upstream) or "no upstream recorded"
        out.append(f"{name}: {', '.join(spec.paths)}  (mirrors {upstream})")
        hash_note = "" if state.listing_matches_manifest else \
            "  [MISMATCH: the listing does not hash to the manifest's value]"
        out.append(f"  pristine tree: {spec.pristine_files} files, sha256 {spec.pristine_sha256[:16]}…{hash_note}")
        out.append(f"  series: {len(state.series)} patch(es), {state.applied} applied")
        for index, entry in enumerate(state.series):
            mark = "applied" if index < state.applied else "       "
            out.append(f"    [{mark}] {_patch_summary(entry)}")
        if state.consistent:
            out.append("  drift: none (tree == pristine + applied patches)")
        else:
            top = state.series[state.applied - 1].name if state.applied else None
            out.append(f"  drift: {len(state.drift)} file(s) not explained by pristine + applied patches:")
            out += _drift_lines(state)
            out.append("    -> PM-Loss edits: " + (f"`pmsplat patches refresh {name}` records them in {top}"
                       if top else f"`pmsplat patches new {name} NAME` then `refresh`"))
            out.append(f"    -> a changed vendored baseline: `pmsplat patches record-pristine {name}`")
    return out


def verify(repo: Repository, names: list[str] | None = None) -> list[str]:
    """Check every selected baseline; raises VerificationError listing all problems found."""
    problems: list[str] = []
    report: list[str] = []
    for name in repo.select(names):
        try:
            found = _verify_one(repo, name)
        except PatchError as error:
            found = [str(error)]
        if found:
            problems += [f"{name}: {problem}" for problem in found]
        else:
            spec = repo.spec(name)
            series = repo.series_names(name)
            report.append(f"{name}: OK — pristine sha256 {spec.pristine_sha256[:16]}… ({spec.pristine_files} "
                          f"files) + {len(series)} patch(es) == the tree, zero fuzz, zero offset")
    if problems:
        raise VerificationError(problems)
    return report


def _verify_one(repo: Repository, name: str) -> list[str]:
    state = inspect(repo, name, _cache(repo))
    spec = state.spec
    problems: list[str] = []
    listed = listing_hash(state.listing)
    if listed != spec.pristine_sha256 or len(state.listing) != spec.pristine_files:
        problems.append(
            f"pristine hash mismatch: {MANIFEST_PATH} records sha256 {spec.pristine_sha256} "
            f"({spec.pristine_files} files) but {repo.relative(repo.listing_path(name))} hashes to {listed} "
            f"({len(state.listing)} files). If the vendored baseline changed on purpose, run "
            f"`pmsplat patches record-pristine {name}`."
        )
    if state.applied < len(state.series):
        problems.append(
            f"only {state.applied} of {len(state.series)} patches are applied (next: "
            f"{state.series[state.applied].name}); run `pmsplat patches apply {name}`."
        )
    if state.drift:
        problems.append(
            f"the tree differs from pristine + {state.applied} applied patch(es) in {len(state.drift)} "
            f"file(s) (pristine tree sha256 should be {spec.pristine_sha256[:16]}…):\n"
            + "\n".join(_drift_lines(state))
            + f"\n  PM-Loss edits: `pmsplat patches refresh {name}`; a changed vendored baseline: "
            f"`pmsplat patches record-pristine {name}`."
        )
    if problems:
        return problems
    # Forward direction: pristine + every patch, strictly, must give the tree byte for byte.
    files = dict(state.pristine)
    for entry in state.series:
        try:
            files, _ = apply_patch(files, entry.patch, patch_name=entry.name)
        except PatchConflictError as error:
            return [f"the series does not apply cleanly to the pristine tree:\n{error}"]
    if files != state.tree:
        differing = sorted(p for p in set(files) | set(state.tree) if files.get(p) != state.tree.get(p))
        return [f"pristine + series is not byte-identical to the tree in: {', '.join(differing)}"]
    return []


# ----------------------------------------------------------------------------------------------
# apply / unapply


def apply(repo: Repository, names: list[str] | None = None, upto: str | None = None,
          allow_offset: bool = False) -> list[str]:
    """Apply the series (up to ``upto``) on every selected baseline, all or nothing.

    With ``allow_offset`` a hunk may match exactly at another line; each patch that needed an
    offset is regenerated (rebased) so the series applies with zero offset again.
    """
    changes: dict[str, bytes | None] = {}
    out: list[str] = []
    for name in repo.select(names):
        state = inspect(repo, name, _cache(repo))
        target = _resolve_upto(upto, state.series, len(state.series), name)
        if target < state.applied:
            raise StateError(f"{name}: {state.applied} patches are applied, more than --upto {upto}; use "
                             f"`pmsplat patches unapply {name} --upto {upto}`")
        if target == state.applied:
            out.append(f"{name}: nothing to apply ({state.applied}/{len(state.series)} applied)")
            continue
        if allow_offset and state.drift:
            raise StateError(f"{name}: --allow-offset rebases patches, which needs a tree without drift; "
                             f"{len(state.drift)} file(s) drifted (see `pmsplat patches status {name}`)")
        if state.drift:
            out.append(f"{name}: note: {len(state.drift)} drifted file(s) are kept as they are")
        files = state.tree
        for entry in state.series[state.applied:target]:
            before = files
            files, offsets = apply_patch(files, entry.patch, patch_name=entry.name, allow_offset=allow_offset)
            out.append(f"{name}: applied {entry.name}")
            if offsets:
                changes.update(_rebase(repo, name, entry, before, files, offsets, out))
        changes.update(_tree_changes(state.tree, files))
    write_files(repo.root, changes)
    return out


def _rebase(repo: Repository, name: str, entry: SeriesEntry, before: dict[str, bytes],
            after: dict[str, bytes], offsets: list[HunkOffset], out: list[str]) -> dict[str, bytes | None]:
    for moved in offsets:
        out.append(f"    {moved.path} hunk #{moved.hunk} at offset {moved.offset:+d}")
    rebased = diff_trees(before, after, entry.patch.description)
    out.append(f"    rebased {entry.name} to apply with zero offset")
    return {repo.relative(repo.patch_dir(name) / entry.name): rebased.text.encode("utf-8")}


def unapply(repo: Repository, names: list[str] | None = None, upto: str | None = None) -> list[str]:
    """Reverse the applied patches (newest first) down to ``upto`` applied, all or nothing."""
    changes: dict[str, bytes | None] = {}
    out: list[str] = []
    for name in repo.select(names):
        state = inspect(repo, name, _cache(repo))
        target = _resolve_upto(upto, state.series, 0, name)
        if target > state.applied:
            raise StateError(f"{name}: only {state.applied} patches are applied, fewer than --upto {upto}; "
                             f"use `pmsplat patches apply {name} --upto {upto}`")
        if target == state.applied:
            out.append(f"{name}: nothing to unapply ({state.applied}/{len(state.series)} applied)")
            continue
        if state.drift:
            out.append(f"{name}: note: {len(state.drift)} drifted file(s) are kept as they are")
        files = state.tree
        for entry in reversed(state.series[target:state.applied]):
            files, _ = apply_patch(files, entry.patch, patch_name=entry.name, reverse=True)
            out.append(f"{name}: unapplied {entry.name}")
        changes.update(_tree_changes(state.tree, files))
    write_files(repo.root, changes)
    return out


# ----------------------------------------------------------------------------------------------
# refresh / new


def refresh(repo: Repository, names: list[str] | None = None, patch: str | None = None) -> list[str]:
    """Regenerate a patch from the current edits: ``patch`` (default: the top applied one) becomes
    ``diff(pristine + the patches before it, tree)``; patches after it count as unapplied."""
    cache = _cache(repo)
    changes: dict[str, bytes | None] = {}
    out: list[str] = []
    selected = repo.select(names)
    if patch is not None and len(selected) != 1:
        raise StateError("--patch needs exactly one baseline: `pmsplat patches refresh BASELINE --patch NAME`")
    for name in selected:
        state = inspect(repo, name, cache)
        if patch is None and state.consistent:
            out.append(f"{name}: nothing to refresh (no drift)")
            continue
        if patch is not None:
            index = _resolve_upto(patch, state.series, 0, name) - 1
            if index < 0:
                raise StateError(f"{name}: --patch needs a patch name or a number from 1")
            if index + 1 < state.applied:
                raise StateError(
                    f"{name}: {state.series[index].name} is not the top applied patch ({state.applied} are "
                    f"applied); run `pmsplat patches unapply {name} --upto {state.series[index].name}` first")
        elif state.applied == 0 and not names:
            out.append(f"{name}: skipped: {len(state.drift)} edited file(s) but no applied patch; start one "
                       f"with `pmsplat patches new {name} NAME` (or `record-pristine {name}` if the baseline "
                       "itself changed)")
            continue
        elif state.applied == 0:
            raise StateError(f"{name}: {len(state.drift)} edited file(s) but no applied patch to record them "
                             f"in; start one with `pmsplat patches new {name} NAME`, then refresh")
        else:
            index = state.applied - 1
        entry = state.series[index]
        base = full_pristine(state, cache, repo.root)
        for earlier in state.series[:index]:
            base, _ = apply_patch(base, earlier.patch, patch_name=earlier.name)
        regenerated = diff_trees(base, state.tree, entry.patch.description)
        check, _ = apply_patch(base, regenerated, patch_name=entry.name)
        if check != state.tree:  # a self-check of the generator/applier pair; never expected to fire
            raise PatchError(f"{name}: internal error: the regenerated {entry.name} does not reproduce the tree")
        text = regenerated.text.encode("utf-8")
        target = repo.patch_dir(name) / entry.name
        if target.read_bytes() == text:
            out.append(f"{name}: {entry.name} unchanged")
            continue
        changes[repo.relative(target)] = text
        out.append(f"{name}: refreshed {_patch_summary(SeriesEntry(entry.name, regenerated))}")
        later = len(state.series) - index - 1
        if later:
            out.append(f"    the {later} patch(es) after it are now unapplied; `pmsplat patches apply {name}` "
                       "re-applies them")
    write_files(repo.root, changes)
    return out


def new_patch(repo: Repository, name: str, patch_name: str, description: str | None = None) -> list[str]:
    """Start an empty patch on top of the series (all existing patches must be applied)."""
    state = inspect(repo, name, _cache(repo))
    if state.applied < len(state.series):
        raise StateError(f"{name}: new patches go on top of the series, but only {state.applied} of "
                         f"{len(state.series)} are applied; run `pmsplat patches apply {name}` first")
    stem = patch_name.removesuffix(".patch")
    if not PATCH_NAME.match(patch_name):
        stem = re.sub(r"^\d{4}-", "", stem)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", stem):
            raise StateError(f"patch name {patch_name!r}: use letters, digits, '.', '_' and '-' "
                             "(e.g. `pm-loss-hook`)")
        patch_name = f"{len(state.series) + 1:04d}-{stem}.patch"
    if patch_name in [entry.name for entry in state.series] or (repo.patch_dir(name) / patch_name).exists():
        raise StateError(f"{name}: a patch named {patch_name} already exists")
    text = description if description else stem.split("-", 1)[-1].replace("-", " ")
    header = text.rstrip("\n") + "\n\n"
    if any(line.startswith(("diff --git ", "--- ", "+++ ", "@@")) for line in header.splitlines()):
        raise StateError("the description must not contain lines that look like diff headers")
    series_file = repo.patch_dir(name) / "series"
    series_text = series_file.read_text(encoding="utf-8")
    if series_text and not series_text.endswith("\n"):
        series_text += "\n"
    write_files(repo.root, {
        repo.relative(repo.patch_dir(name) / patch_name): header.encode("utf-8"),
        repo.relative(series_file): (series_text + patch_name + "\n").encode("utf-8"),
    })
    out = [f"{name}: created {patch_name} on top of the series (empty); edit the baseline, then "
           f"`pmsplat patches refresh {name}`"]
    if state.drift:
        out.append(f"    note: {len(state.drift)} file(s) already have unrecorded edits; they will go into "
                   f"{patch_name} on refresh (refresh the previous patch first if they belong there)")
    return out


# ----------------------------------------------------------------------------------------------
# diff


def diff(repo: Repository, names: list[str] | None = None, stat_only: bool = False) -> list[str]:
    """The series as text (unless ``stat_only``) with per-file +/- counts and totals.

    "Changed lines" = added + removed lines of the net change pristine -> pristine + series.
    """
    cache = _cache(repo)
    out: list[str] = []
    grand = 0
    for name in repo.select(names):
        state = inspect(repo, name, cache)
        out.append(f"=== {name}: {len(state.series)} patch(es) on {', '.join(state.spec.paths)}")
        for entry in state.series:
            if not stat_only:
                out += entry.patch.text.rstrip("\n").split("\n")
            out.append(f"--- {_patch_summary(entry)}")
            for change in entry.patch.files:
                kind = {"create": " (new file)", "delete": " (deleted)", "modify": ""}[file_kind(change)]
                out.append(f"    +{change.added:<4} -{change.removed:<4} {change.path}{kind}")
        try:
            pristine = full_pristine(state, cache, repo.root)
            files = pristine
            for entry in state.series:
                files, _ = apply_patch(files, entry.patch, patch_name=entry.name)
            net = diff_trees(pristine, files)
        except PatchError as error:
            out.append(f"{name}: net change unavailable ({str(error).splitlines()[0]})")
            continue
        changed = net.added + net.removed
        grand += changed
        out.append(f"{name}: total +{net.added} -{net.removed} = {changed} changed lines in "
                   f"{len(net.files)} file(s) (pristine -> pristine + series)")
    if len(repo.select(names)) > 1:
        out.append(f"all baselines: {grand} changed lines")
    return out


# ----------------------------------------------------------------------------------------------
# record-pristine


def record_pristine(repo: Repository, names: list[str] | None = None) -> list[str]:
    """Accept the current tree minus the applied patches as the new pristine tree and rebase the
    applied patches onto it (hunks may have moved: they are located by exact match, no fuzz)."""
    changes: dict[str, bytes | None] = {}
    out: list[str] = []
    specs = dict(repo.manifest.baselines)
    for name in repo.select(names):
        series = repo.series(name)
        tree = repo.tree(name)
        applied, pristine = _unapply_all(name, series, tree)
        files = pristine
        for entry in series[:applied]:
            after, offsets = apply_patch(files, entry.patch, patch_name=entry.name, allow_offset=True)
            if offsets:
                rebased = diff_trees(files, after, entry.patch.description)
                changes[repo.relative(repo.patch_dir(name) / entry.name)] = rebased.text.encode("utf-8")
                out.append(f"{name}: rebased {entry.name} ({len(offsets)} hunk(s) had moved)")
            files = after
        if files != tree:
            raise PatchError(f"{name}: internal error: pristine + rebased patches does not reproduce the tree")
        listing = tree_listing(pristine)
        changes[repo.relative(repo.listing_path(name))] = format_listing(listing).encode("utf-8")
        specs[name] = replace(specs[name], pristine_sha256=listing_hash(listing), pristine_files=len(listing))
        PristineCache(repo.cache_dir).put_all(pristine)
        out.append(f"{name}: pristine tree recorded: {len(listing)} files, sha256 {listing_hash(listing)} "
                   f"({applied} of {len(series)} patches were applied)")
    manifest = Manifest(repo.manifest.description, specs)
    changes[MANIFEST_PATH] = manifest.to_json().encode("utf-8")
    write_files(repo.root, changes)
    repo.manifest = manifest
    return out


def _unapply_all(name: str, series: list[SeriesEntry], tree: dict[str, bytes]) -> tuple[int, dict[str, bytes]]:
    """Find k such that the first k patches reverse-apply (offsets allowed) and patch k+1 would
    apply; return (k, tree without them). Errors when no k fits (the tree is half-patched)."""
    failures: list[str] = []
    for applied in range(len(series), -1, -1):
        files = tree
        try:
            for entry in reversed(series[:applied]):
                files, _ = apply_patch(files, entry.patch, patch_name=entry.name, reverse=True,
                                       allow_offset=True)
            if applied < len(series):
                apply_patch(tree, series[applied].patch, patch_name=series[applied].name, allow_offset=True)
        except PatchConflictError as error:
            failures.append(f"  assuming {applied} applied: {str(error).splitlines()[0]}")
            continue
        return applied, files
    raise StateError(f"{name}: cannot tell which patches are applied (needed to separate the baseline from "
                     "the patches):\n" + "\n".join(failures)
                     + "\nRestore the patched lines or files (or remove them all), then retry.")
