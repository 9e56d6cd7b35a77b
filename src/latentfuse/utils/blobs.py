"""Image bytes that live inside a bigger file (a tar shard member, a dataset's cell), read only when needed:
a source of millions of items lists references, not pixels, and the encoder reads each one as it goes.

A blob is any object with ``read_bytes() -> bytes`` that is not a path; the image loader and the feature
store's content keys accept one wherever they accept an image file (its key is the digest of its bytes, so
the same photo in a tar shard and in a folder shares one cached row).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Blob(Protocol):
    """Bytes of one image inside the file ``container``, which ``member`` names."""

    container: str
    member: str

    def read_bytes(self) -> bytes: ...


def is_blob(item: Any) -> bool:
    """A blob, not a path (``pathlib.Path`` also has ``read_bytes``)."""
    return isinstance(item, Blob) and not isinstance(item, (str, os.PathLike))


@dataclass(frozen=True)
class TarMember:
    """One member of an uncompressed tar file, by the position of its data (what ``tarfile`` reports as
    ``offset_data``): reading it is one seek and one read, without scanning the archive."""

    archive: str
    name: str
    offset: int
    size: int

    @property
    def container(self) -> str:
        return self.archive

    @property
    def member(self) -> str:
        return f"{self.name}@{self.offset}"

    def read_bytes(self) -> bytes:
        with open(self.archive, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise OSError(f"truncated: {len(data)} of {self.size} bytes")
        return data

    def __str__(self) -> str:  # error messages and skip reports name the shard and the member
        return f"{self.archive}:{self.name}"


@dataclass(frozen=True)
class TableCell:
    """Image bytes in one cell of a columnar file — a Hugging Face dataset's Arrow file (``save_to_disk``, the
    ``load_dataset`` cache) or a parquet file — found by row group and row; the group is read when asked for
    (and kept for the next rows: an encoder reads rows in order)."""

    file: str
    column: str
    group: int
    row: int

    @property
    def container(self) -> str:
        return self.file

    @property
    def member(self) -> str:
        return f"{self.column}[{self.group}:{self.row}]"

    def read_bytes(self) -> bytes:
        value = _group(self.file, self.column, self.group)[self.row].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not isinstance(data, (bytes, bytearray)):
            raise OSError(f"no image bytes in column {self.column!r} row {self.row} of group {self.group}")
        return bytes(data)

    def __str__(self) -> str:
        return f"{self.container}:{self.member}"


@lru_cache(maxsize=4)
def _group(file: str, column: str, group: int) -> Any:
    """One row group's column: parquet by its row group; an Arrow IPC file by its record batch."""
    import pyarrow.parquet as pq

    if file.endswith(".parquet"):
        return pq.ParquetFile(file).read_row_group(group, columns=[column]).column(column)
    return arrow_batches(file)[group].column(column)


@lru_cache(maxsize=8)
def arrow_batches(file: str) -> tuple[Any, ...]:
    """The record batches of an Arrow IPC file, memory-mapped (zero-copy; the map stays open while they are
    referenced): the stream format ``datasets`` writes, or the file format."""
    import pyarrow as pa

    source = pa.memory_map(file)
    try:
        return tuple(pa.ipc.open_stream(source))
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
        return tuple(reader.get_batch(i) for i in range(reader.num_record_batches))
