"""Result tables written twice: Markdown (for reports) and CSV (full precision, for machines)."""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

from pmsplat.errors import InputError

Cell = str | int | float | bool | None


def _columns(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _plain(value: object, index: int, key: str) -> Cell:
    """Python scalars as they are; NumPy scalars and one-element tensors/arrays as Python ones."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:  # torch tensor
        return value.item()
    if hasattr(value, "size") and hasattr(value, "item") and value.size == 1:  # numpy array
        return value.item()
    raise InputError(
        f"write_table: row {index} column '{key}' holds a {type(value).__name__}; cells must be "
        "str, int, float, bool, None or a single-element tensor/array."
    )


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest string that parses back to the same float ('nan', 'inf')
    return str(value)


def _md_cell(value: Cell, float_format: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else float_format.format(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_table(
    rows: Sequence[Mapping[str, object]],
    path_stem: str | Path,
    *,
    columns: Sequence[str] | None = None,
    float_format: str = "{:.4f}",
) -> tuple[Path, Path]:
    """Write ``rows`` to ``<path_stem>.md`` (a GitHub table) and ``<path_stem>.csv``.

    Columns are ``columns`` or the union of the rows' keys in first-seen order; a missing key is
    an empty CSV cell and "—" in Markdown. CSV floats are written with ``repr`` (round-trip
    exact, ``nan``/``inf`` included); Markdown floats with ``float_format``, NaN as "n/a".
    Values may be str, int, float, bool, None, NumPy scalars or single-element tensors/arrays
    (converted with ``.item()``).
    Returns ``(md_path, csv_path)``; parent folders are created.
    """
    if not rows:
        raise InputError(f"write_table: no rows to write to '{path_stem}'.")
    header = _columns(rows, columns)
    rows = [{key: _plain(value, index, key) for key, value in row.items()} for index, row in enumerate(rows)]
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path = stem.with_name(stem.name + ".csv")
    md_path = stem.with_name(stem.name + ".md")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_cell(row.get(key)) for key in header])
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(key), float_format) for key in header) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path


def _parse(text: str) -> Cell:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_table_csv(path: str | Path, *, text_columns: Sequence[str] = ("scene",)) -> list[dict[str, Cell]]:
    """Rows of a CSV written by :func:`write_table`: numbers parsed back (int, then float),
    empty cells as None, everything else as str; ``text_columns`` (default: ``scene``, whose
    names may be all digits) are kept as str. Booleans come back as the strings "True"/"False"."""
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return [
            {key: (cell if key in text_columns and cell != "" else _parse(cell)) for key, cell in zip(header, line)}
            for line in reader
        ]
