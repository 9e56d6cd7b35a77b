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
