"""The package installs, imports, and its CLI starts."""

import subprocess
import sys

import pytest

import pmsplat
from pmsplat.cli import COMMANDS, main


def test_cli_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_cli_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "pmsplat.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "patches" in result.stdout


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError):
        pmsplat.does_not_exist  # noqa: B018
