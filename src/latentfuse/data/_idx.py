"""Read (gzipped) IDX files — the MNIST family's format — into numpy arrays, validated and cached.

Decompressing Fashion-MNIST's 26 MB of images takes a noticeable fraction of a second, so each file is
decoded once per process, keyed by path, size and mtime (an edited file is re-read).
"""
from __future__ import annotations

import gzip
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The file's uint8 array (read-only, shared between callers); corrupt files raise DataError."""
    st = path.stat()
    return _read_cached(str(path), st.st_size, st.st_mtime_ns, magic)


@lru_cache(maxsize=8)
def _read_cached(path: str, size: int, mtime_ns: int, magic: int) -> np.ndarray:
    name = Path(path).name
    raw = _raw_bytes(Path(path))
    if len(raw) < 4:
        raise DataError(f"{name}: only {len(raw)} bytes; expected an IDX header (truncated file?)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{name}: magic number {found:#010x}, expected {magic:#010x} (wrong or corrupt file)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: header cut short at {len(raw)} bytes; expected {header} (truncated file?)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(
            f"{name}: {len(raw)} bytes after decompression, but its header (shape {shape}) needs "
            f"{expected} ({'truncated' if len(raw) < expected else 'trailing data'}?)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _raw_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path.name}: cannot decompress ({exc}); the file is truncated or corrupt") from None
