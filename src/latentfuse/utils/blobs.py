"""Image bytes that live inside a bigger file (a tar shard member, a dataset's cell), read only when needed:
a source of millions of items lists references, not pixels, and the encoder reads each one as it goes.

A blob is any object with ``read_bytes() -> bytes`` that is not a path; the image loader and the feature
store's content keys accept one wherever they accept an image file (its key is the digest of its bytes, so
the same photo in a tar shard and in a folder shares one cached row).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Blob(Protocol):
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

    def read_bytes(self) -> bytes:
        with open(self.archive, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise OSError(f"truncated: {len(data)} of {self.size} bytes")
        return data

    def __str__(self) -> str:  # error messages and skip reports name the shard and the member
        return f"{self.archive}:{self.name}"
