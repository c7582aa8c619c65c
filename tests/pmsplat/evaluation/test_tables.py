"""write_table: the CSV parses back to the same values, the Markdown table is well formed."""

from __future__ import annotations

import csv
import math

from pmsplat.evaluation import markdown_table, read_table_csv, write_csv, write_table


ROWS = [
    {"scene": "000123", "variant": "baseline", "psnr": 25.123456789012345, "ssim": 0.8, "steps": 300},
    {"scene": "abc", "variant": "pm|loss", "psnr": 1 / 3, "lpips": math.nan, "steps": 300},
    {"scene": "def", "variant": "pm", "psnr": math.inf, "ssim": None, "lpips": 0.125, "steps": 7},
]


def test_csv_round_trip_is_exact(tmp_path):
    md_path, csv_path = write_table(ROWS, tmp_path / "sub" / "results")
    assert md_path.name == "results.md" and csv_path.name == "results.csv"
    back = read_table_csv(csv_path)
    assert [row["scene"] for row in back] == ["000123", "abc", "def"]  # all-digit name stays text
    assert back[0]["psnr"] == ROWS[0]["psnr"] and back[1]["psnr"] == 1 / 3  # bit-exact floats
    assert back[2]["psnr"] == math.inf and math.isnan(back[1]["lpips"])
    assert back[0]["lpips"] is None and back[2]["ssim"] is None  # missing / None cells
    assert back[2]["steps"] == 7 and isinstance(back[2]["steps"], int)
    with csv_path.open() as handle:
        header = next(csv.reader(handle))
    assert header == ["scene", "variant", "psnr", "ssim", "steps", "lpips"]  # first-seen order


def test_markdown_table_shape_and_formatting(tmp_path):
    md_path, _ = write_table(ROWS, tmp_path / "t", columns=["variant", "psnr", "lpips"])
    lines = md_path.read_text().strip().splitlines()
    assert lines[0] == "| variant | psnr | lpips |"
    assert len(lines) == 2 + len(ROWS)
    assert lines[2] == "| baseline | 25.1235 | — |"
    assert lines[3] == "| pm\\|loss | 0.3333 | n/a |"
    assert all(line.count("|") - line.count("\\|") == 4 for line in lines)


def test_numpy_and_tensor_cells_are_converted(tmp_path):
    import numpy as np
    import pytest
    import torch

    from pmsplat.errors import InputError

    rows = [{"a": np.float32(0.5), "b": torch.tensor(2.25, dtype=torch.float64), "c": np.int64(3)}]
    _, csv_path = write_table(rows, tmp_path / "t")
    assert read_table_csv(csv_path) == [{"a": 0.5, "b": 2.25, "c": 3}]
    with pytest.raises(InputError, match="column 'x'"):
        write_table([{"x": torch.zeros(3)}], tmp_path / "bad")


def test_markdown_of_preformatted_rows_and_csv_alone(tmp_path):
    """The reports' tables (pre-formatted cells by position) and CSV files go through the same
    writer: same escaping, same float rule."""
    text = markdown_table([["baseline", "1.000 ± 0.100"], ["a|b", "n/a"]], ["variant", "PSNR"])
    assert text.splitlines() == ["| variant | PSNR |", "|---|---|", "| baseline | 1.000 ± 0.100 |", "| a\\|b | n/a |"]
    assert markdown_table([], ["variant", "PSNR"]).splitlines() == ["| variant | PSNR |", "|---|---|"]
    path = write_csv([{"variant": "pm", "seed": 0, "psnr": 1 / 3}, {"variant": "base", "psnr": math.nan}],
                     tmp_path / "a" / "results.csv", columns=["variant", "seed", "psnr"])
    assert path.read_text().splitlines() == ["variant,seed,psnr", f"pm,0,{1 / 3!r}", "base,,nan"]
