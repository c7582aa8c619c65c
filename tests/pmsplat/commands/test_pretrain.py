"""``pmsplat pretrain``: registered in the CLI; a bad option is one line with the command prefix
and exit code 2 (nothing generated or trained)."""

from __future__ import annotations

import pytest

from pmsplat.cli import COMMANDS, main


def test_registered():
    assert COMMANDS["pretrain"].module == "pmsplat.commands.pretrain"


@pytest.mark.parametrize("arguments, message", [
    (["--baseline", "mvsplat", "--max-steps", "0"], "max-steps must be >= 1"),
    (["--baseline", "mvsplat", "trainer.max_steps=5"], "use --max-steps"),
    (["--baseline", "depthsplat", "--export", "weights.pt"], ".safetensors"),
])
def test_bad_input_is_one_line(arguments, message, tmp_path, capsys):
    assert main(["pretrain", *arguments, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pmsplat pretrain: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
