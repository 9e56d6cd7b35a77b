"""Short stable fingerprints used as cache keys."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import DataError


def digest(*parts: Any, length: int = 16) -> str:
    """Hash JSON-serialisable parts (order matters) into a short hex string."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:length]


def file_digest(path: str | Path, length: int = 16, chunk: int = 1 << 20) -> str:
    """Content hash of a file (weights identity for encoders, data identity for sources).

    Only regular files are read: a FIFO would block forever and a device (``/dev/zero``) never ends.
    """
    check_regular(path)
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()[:length]


def not_regular(mode: int) -> str:
    """'' for a regular file, else what it is instead, in words."""
    if stat.S_ISREG(mode):
        return ""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def check_regular(path: str | Path) -> os.stat_result:
    """stat ``path`` and refuse anything but a regular file, naming it (symlinks are followed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    kind = not_regular(st.st_mode)
    if kind:
        raise DataError(f"{path}: is {kind}, expected a regular file")
    return st
