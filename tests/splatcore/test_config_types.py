"""Config values of the wrong type are one ConfigError naming the key, the value, the expected
type and an example, before anything is created on disk (unit + through `pmsplat train` as a user)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from splatcore.config_types import check_field_types
from splatcore.errors import ConfigError


@dataclass
class Example:
    steps: int | None = -1
    lr: float = 2e-4
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    path: Path | None = None
    sizes: list[int] | None = None


@pytest.mark.parametrize(
    "values",
    [{"steps": 10}, {"steps": None}, {"lr": 1}, {"lr": 0.5}, {"flag": True}, {"mode": "b"}, {"path": "x/y"},
     {"sizes": [1, 2]}, {"unknown": "anything"}],
)
def test_values_of_the_right_type_pass(values):
    check_field_types(Example, values, "group")


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"steps": "abc"}, ["group.steps='abc' (str)", "int or null", "group.steps=10"]),
        ({"steps": 2.5}, ["group.steps=2.5 (float)", "int or null"]),
        ({"steps": True}, ["group.steps=True (bool)"]),
        ({"lr": "abc"}, ["group.lr='abc'", "expects float", "group.lr=0.0002"]),
        ({"flag": "maybe"}, ["group.flag='maybe'", "expects bool", "group.flag=false"]),
        ({"mode": "c"}, ["group.mode='c'", "one of 'a', 'b'"]),
        ({"sizes": 3}, ["group.sizes=3"]),
    ],
)
def test_a_wrong_type_names_key_value_type_and_example(values, words):
    with pytest.raises(ConfigError) as error:
        check_field_types(Example, values, "group")
    for word in words:
        assert word in str(error.value), (word, str(error.value))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("trainer.max_steps=abc", ["trainer.max_steps='abc'", "expects int"]),
        ("trainer.max_steps=2.5", ["trainer.max_steps=2.5", "expects int"]),
        ("optimizer.lr=abc", ["optimizer.lr='abc'", "expects float"]),
        ("checkpointing.resume=maybe", ["checkpointing.resume='maybe'", "expects bool"]),
    ],
)
def test_pmsplat_train_rejects_a_wrong_type_before_creating_the_output(tmp_path, override, words):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "pmsplat.cli", "train", "+experiment=mvsplat_synthetic_cpu", override, f"output_dir={out}"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("pmsplat train: ")
    for word in words:
        assert word in line, (word, line)
    assert not out.exists()


HINTED = [
    "trainer.max_steps=abc",
    "model.encoder.num_depth_candidates=many",
    "dataset.view_sampler.num_context_views=2.5",
    "optimizer.lr=abc",
    "checkpointing.resume=maybe",
    "trainer.max_step=5",
    "model.encoder.d_featur=48",
    "model.decoder.backend=cuda",
]


def _hints(line: str) -> list[str]:
    """The overrides a one-line error proposes: ``e.g. k=v``, ``did you mean k=v``, or every
    option of ``k=... use one of ('a', 'b')``."""
    import re

    if match := re.search(r"(?:e\.g\.|did you mean) (\S+?=\S+?)[.?]?$", line):
        return [match.group(1)]
    if match := re.search(r"(\S+?)=\S+ is unknown; use one of \(([^)]*)\)", line):
        return [f"{match.group(1)}={option.strip().strip(chr(39))}" for option in match.group(2).split(",")]
    return []


@pytest.mark.parametrize("override", HINTED)
def test_every_override_a_config_error_proposes_composes(override, capsys):
    from pmsplat.cli import main

    assert main(["train", "--cfg", "+experiment=mvsplat_synthetic_cpu", override]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    hints = _hints(line)
    assert hints, f"no runnable hint in: {line}"
    for hint in hints:
        assert main(["train", "--cfg", "+experiment=mvsplat_synthetic_cpu", hint]) == 0, (line, hint, capsys.readouterr().err)
        capsys.readouterr()
