"""Short stable fingerprints used as cache keys."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def digest(*parts: Any, length: int = 16) -> str:
    """Hash JSON-serialisable parts (order matters) into a short hex string."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:length]


def file_digest(path: str | Path, length: int = 16, chunk: int = 1 << 20) -> str:
    """Content hash of a file (weights identity for encoders, data identity for sources)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()[:length]


def stat_digest(paths: list[Path], length: int = 16) -> str:
    """Cheap identity for many files (name, size, mtime) — hashing 8k images on every run would be slow."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:length]
