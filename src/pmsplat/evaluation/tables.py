"""The one table writer of every report: Markdown (for reading) and CSV (full precision, for machines).

:func:`write_table` writes both (``pmsplat evaluate``, the reproduction's per-scene table);
:func:`markdown_table` gives the Markdown text for a report that embeds several tables
(report.md, ablation.md) and :func:`write_csv` the CSV alone (results.csv, ablation.csv).
Same cell rules everywhere: CSV floats with ``repr`` (round-trip exact, ``nan``/``inf``
included), Markdown floats with a format, NaN as "n/a", None / missing as "—", ``|`` escaped.
"""

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


def _sequence_rows(rows: Sequence[object], columns: Sequence[str] | None) -> list[Mapping[str, object]]:
    """Rows given as sequences of cells (with ``columns`` as the header) as mappings."""
    result = []
    for index, row in enumerate(rows):
        if isinstance(row, Mapping):
            result.append(row)
            continue
        if columns is None or len(row) != len(columns):
            raise InputError(
                f"markdown_table: row {index} is a sequence of {len(row)} cells; pass 'columns' with one "
                "header per cell (or rows as mappings)."
            )
        result.append({f"\x00{i}": value for i, value in enumerate(row)})
    return result


def markdown_table(
    rows: Sequence[Mapping[str, object] | Sequence[object]],
    columns: Sequence[str] | None = None,
    *,
    float_format: str = "{:.4f}",
) -> str:
    """A GitHub Markdown table (no trailing newline) of ``rows``: mappings (columns: ``columns``
    or the union of their keys in first-seen order) or sequences of cells (``columns`` is then the
    header, matched by position; cells are usually pre-formatted strings). Cells as in
    :func:`write_table`; ``|`` and newlines in cells are escaped."""
    positional = any(not isinstance(row, Mapping) for row in rows)
    mapped = _sequence_rows(rows, columns) if positional else list(rows)
    header = _columns(mapped, columns)
    keys = [f"\x00{i}" for i in range(len(header))] if positional else header
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for index, row in enumerate(mapped):
        cells = [_md_cell(_plain(row.get(key), index, label), float_format) for key, label in zip(keys, header)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, object]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` to the CSV file ``path`` (parent folders created): columns ``columns`` or
    the union of the rows' keys in first-seen order, a missing key or None as an empty cell,
    floats with ``repr``. Returns the path."""
    header = _columns(rows, columns)
    rows = [{key: _plain(value, index, key) for key, value in row.items()} for index, row in enumerate(rows)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_cell(row.get(key)) for key in header])
    return path


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
    stem = Path(path_stem)
    csv_path = write_csv(rows, stem.with_name(stem.name + ".csv"), columns)
    md_path = stem.with_name(stem.name + ".md")
    md_path.write_text(markdown_table(rows, _columns(rows, columns), float_format=float_format) + "\n")
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
