"""Read a table (CSV, TSV, JSONL, parquet) into rows that remember where they came from.

Every format ends up as the same ``Table`` so the ``pairs`` source validates rows once, and error
messages can always say "pairs.csv row 3 (line 4)" instead of surfacing a parser traceback.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row (header not counted); ``row<N>`` ids use it
    line: int | None  # 1-based physical line of the row's start, None for parquet
    values: dict[str, Any]

    def where(self, name: str) -> str:
        """``"pairs.csv row 3 (line 4)"`` — what error messages quote."""
        return f"{name} row {self.number}" + (f" (line {self.line})" if self.line is not None else "")

    def origin(self, name: str) -> str:
        """``"pairs.csv:4"`` (``file:line``), or ``"pairs.parquet:row3"`` without line numbers."""
        return f"{name}:{self.line}" if self.line is not None else f"{name}:row{self.number}"


@dataclass(frozen=True)
class Table:
    path: Path
    columns: list[str]
    rows: list[Row]


def read_table(path: Path) -> Table:
    """Dispatch on the file extension; a missing, unreadable or malformed file raises DataError."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise DataError(f"{path}: unknown table format {path.suffix!r}; expected one of {known}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if kind == "parquet":
            return _read_parquet(path)
        with open(path, encoding="utf-8-sig", newline="") as handle:
            if kind == "jsonl":
                return _read_jsonl(path, handle)
            return _read_delimited(path, handle, "," if kind == "csv" else "\t")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}:{first_undecodable_line(path)}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read ({exc.strerror or exc})") from None


def first_undecodable_line(path: Path) -> int:
    """The 1-based line holding the first byte sequence that is not UTF-8 (only run on the error path)."""
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def _read_delimited(path: Path, handle: Any, delimiter: str) -> Table:
    reader = csv.reader(handle, delimiter=delimiter)
    records = csv_records(path.name, reader)
    try:
        _, header = next(records)
    except StopIteration:
        raise DataError(f"{path.name}: empty file; expected a header row") from None
    columns = [c.strip() for c in header]
    _check_columns(path.name, columns)
    rows: list[Row] = []
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # blank lines are not rows, so they never shift ``row<N>`` ids
        number = len(rows) + 1
        if len(fields) != len(columns):
            raise DataError(
                f"{path.name} row {number} (line {line}): {len(fields)} fields, but the header has "
                f"{len(columns)} ({', '.join(columns)})"
            )
        rows.append(Row(number, line, dict(zip(columns, fields))))
    return Table(path, columns, rows)


def csv_records(name: str, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(start line, fields)`` from a csv reader; csv errors become DataErrors naming the line."""
    end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{name} line {reader.line_num}: malformed row ({exc})") from None
        start, end = end + 1, reader.line_num
        yield start, fields


def _read_jsonl(path: Path, handle: Any) -> Table:
    rows: list[Row] = []
    columns: dict[str, None] = {}
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} line {line}: bad JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path.name} line {line}: expected a JSON object per line, got {type(record).__name__}"
            )
        columns.update(dict.fromkeys(record))
        rows.append(Row(len(rows) + 1, line, record))
    if not rows:
        raise DataError(f"{path.name}: no JSON objects; expected one object per line")
    return Table(path, list(columns), rows)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path.name}: reading parquet needs pyarrow; install it with `pip install pyarrow` "
            "(or `pip install latentfuse[data]`)"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise DataError(f"{path.name}: not a readable parquet file ({exc})") from None
    columns = [str(c) for c in table.column_names]
    _check_columns(path.name, columns)
    rows = [Row(i, None, values) for i, values in enumerate(table.to_pylist(), start=1)]
    return Table(path, columns, rows)


def _check_columns(name: str, columns: list[str]) -> None:
    seen = set()
    for column in columns:
        if column in seen:
            raise DataError(f"{name}: column {column!r} appears twice in the header")
        seen.add(column)


def as_text(value: Any, where: str, column: str) -> str:
    """A cell as a stripped string: None/missing → "", numbers → their text; lists/objects are errors."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{where}: {column!r} is a {type(value).__name__}; expected a string")
