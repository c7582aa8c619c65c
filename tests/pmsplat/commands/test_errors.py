"""Every command of the ``pmsplat`` CLI turns a bad input into one line ``pmsplat <command>: <message>``
on stderr, a non-zero exit and no traceback (the convention of ``pmsplat.errors``).

The commands are listed from the parser, so a new command (or action) without a case here fails
``test_every_command_has_a_bad_input_case``.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import pytest

from pmsplat.cli import COMMANDS, build_parser, main, subparsers


def leaf_commands() -> list[str]:
    """Every runnable command path of the parser, e.g. ``teacher check`` or ``evaluate``."""
    found = []

    def walk(parser, path):
        children = subparsers(parser)
        if not children:
            found.append(" ".join(path))
        for name, child in children.items():
            walk(child, [*path, name])

    walk(build_parser(), [])
    return sorted(found)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network in the test")


def _broken_registry(args):
    from pmsplat.errors import PmsplatError

    raise PmsplatError("the teacher registry is broken (a test stand-in)")


# command path -> (arguments after the command path, expected exit code). ``{tmp}`` is an empty folder.
CASES: dict[str, tuple[list[str], int]] = {
    "data synth": (["--out", "{tmp}/synthetic", "--frames", "5"], 2),
    "data fetch-index": (["--out", "{tmp}/assets", "--only", "re10k_bound_aware.json"], 1),  # offline, see below
    "evaluate": (["--checkpoint", "{tmp}/missing.ckpt", "--index", "{tmp}/index.json"], 2),
    "parity": (["--baseline", "mvsplat", "{tmp}/missing.safetensors"], 2),
    "patches apply": (["--root", "{tmp}"], 1),
    "patches diff": (["--root", "{tmp}"], 1),
    "patches new": (["mvsplat", "hook", "--root", "{tmp}"], 1),
    "patches record-pristine": (["--root", "{tmp}"], 1),
    "patches refresh": (["--root", "{tmp}"], 1),
    "patches status": (["--root", "{tmp}"], 1),
    "patches unapply": (["--root", "{tmp}"], 1),
    "patches verify": (["--root", "{tmp}"], 1),
    "pretrain": (["--baseline", "mvsplat", "--max-steps", "0"], 2),
    "reproduce": (["--baseline", "mvsplat", "--variants", "huber"], 2),
    "teacher check": (["synthetic", "--teacher-config", "{tmp}/missing.yaml"], 1),
    "teacher list": ([], 1),  # no input to get wrong: a failing registry stands in, see below
    "teacher precompute": (["--dataset", "{tmp}/missing", "--out", "{tmp}/cache"], 1),
    "teacher verify": (["{tmp}/missing-cache"], 1),
    "train": (["+experiment=does_not_exist"], 2),
}


def test_every_command_has_a_bad_input_case():
    commands = leaf_commands()
    assert {path.split()[0] for path in commands} == set(COMMANDS)
    assert commands == sorted(CASES), "add a bad-input case for each new command to CASES"


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_bad_input_is_one_line_with_the_command_prefix(command, tmp_path, capsys, monkeypatch):
    arguments, code = CASES[command]
    if command == "data fetch-index":
        monkeypatch.setattr("urllib.request.urlopen", _offline)
    if command == "teacher list":
        monkeypatch.setattr("pmsplat.commands.teacher.run_list", _broken_registry)
    argv = command.split() + [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith(f"pmsplat {command}: "), err
    assert "Traceback" not in err


def test_a_missing_checkpoint_gives_no_traceback_from_the_installed_command(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pmsplat.cli", "evaluate", "--checkpoint", str(tmp_path / "missing.ckpt"),
         "--index", str(tmp_path / "index.json")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr == f"pmsplat evaluate: --checkpoint {tmp_path / 'missing.ckpt'} does not exist.\n"


def test_a_missing_optional_package_is_one_line(capsys, monkeypatch):
    import pmsplat.commands.reproduce as command

    def needs_a_package(args):
        import a_package_that_is_not_installed  # noqa: F401

    monkeypatch.setattr(command, "run", needs_a_package)
    assert main(["reproduce", "--baseline", "mvsplat"]) == 2
    err = capsys.readouterr().err
    assert err == ("pmsplat reproduce: this needs the Python package 'a_package_that_is_not_installed', which is "
                   "not installed (pip install a_package_that_is_not_installed).\n")


def test_a_bug_keeps_its_traceback(monkeypatch):
    import pmsplat.commands.reproduce as command

    def buggy(args):
        raise KeyError("a bug")

    monkeypatch.setattr(command, "run", buggy)
    with pytest.raises(KeyError, match="a bug"):
        main(["reproduce", "--baseline", "mvsplat"])
