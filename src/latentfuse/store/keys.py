"""Content keys: what a cached feature row is filed under, so the same bytes are encoded once.

An image file's key is the digest of its bytes (remembered by path, size and mtime in the SQLite table of
``utils.digests``, so a re-run costs a ``stat`` per file, not a read); a text's is the digest of its UTF-8;
an in-memory image's the digest of its pixels, shape and dtype; image bytes inside a tar shard or a dataset
file (``utils.blobs``) the key they would have as a file, remembered under the shard's stat like a file's.
Neither the path, the row, the split nor the source is part of a key: renaming a folder, editing another
caption, or listing the same photos from another source finds the rows already there.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..utils.blobs import is_blob
from ..utils.digests import blob_digests, file_digests

KEY_LENGTH = 16  # hex characters: 64 bits, a collision chance of ~3e-8 among a million items


def _hash(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:KEY_LENGTH]


def content_keys(payloads: Sequence[Any], modality: str) -> list[str]:
    """One key per payload. A file that cannot be read is keyed by its path (its encoding then fails and is
    reported or skipped like any bad item; the key changes once the file is there)."""
    keys: list[str | None] = [None] * len(payloads)
    files: dict[int, Path] = {}
    blobs: dict[int, Any] = {}
    for i, payload in enumerate(payloads):
        if modality == "image" and isinstance(payload, (str, os.PathLike)):
            files[i] = Path(payload)
        elif isinstance(payload, str):
            keys[i] = "t" + _hash(payload.encode("utf-8"))[1:]
        elif is_blob(payload):
            blobs[i] = payload
        else:
            keys[i] = _array_key(payload)
    if files:
        readable = {i: path for i, path in files.items() if path.exists()}
        digests = file_digests(list(dict.fromkeys(readable.values())))
        for i, path in files.items():
            keys[i] = "f" + digests[path][1:] if i in readable else "m" + _hash(os.fsencode(path.absolute()))[1:]
    if blobs:  # a blob's key is its bytes' key as a file of their own; an unreadable one, what it names
        known = blob_digests(list(dict.fromkeys(blobs.values())))
        for i, blob in blobs.items():
            keys[i] = "f" + known[blob][1:] if blob in known else "m" + _hash(str(blob).encode("utf-8", "replace"))[1:]
    return keys  # type: ignore[return-value]


def _array_key(payload: Any) -> str:
    """An in-memory image (uint8 array, PIL image, tensor) by its pixels."""
    array = np.ascontiguousarray(np.asarray(payload))
    return "a" + _hash(str(array.shape).encode(), array.dtype.str.encode(), array.tobytes())[1:]
