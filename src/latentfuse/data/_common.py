"""Helpers every source shares: the raise-or-skip policy for bad rows, and cheap content fingerprints."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..utils.digests import content_digest
from ..utils.hashing import digest, file_digest


class BadRows:
    """Raise on the first bad row, or (``skip_bad``) record ``(id, reason)`` so the caller drops it.

    Keeping the policy in one place means every source words and records skips the same way.
    """

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    def report(self, item_id: str, message: str) -> None:
        """``message`` names the file, the row/line and what was expected; it becomes the skip reason."""
        if not self.skip_bad:
            raise DataError(message)
        self.skipped.append((item_id, message))


def source_path(arg: str | None, source: str, what: str) -> Path:
    """The absolute path from a spec argument; a missing argument is a clear error, not a TypeError."""
    if not arg or not arg.strip():
        raise DataError(f"{source} needs a {what}: write it as '{source}:{what.upper()}'")
    return Path(arg.strip()).expanduser().resolve()


def image_files(directory: Path) -> list[Path]:
    """The regular files of an image directory (one scandir, no recursion)."""
    with os.scandir(directory) as entries:
        return [Path(e.path) for e in entries if e.is_file()]


def content_fingerprint(kind: str, tables: list[Path], images: list[Path]) -> str:
    """Hash of the text files' contents plus the images' names and contents (digests cached by stat, see
    ``utils.digests``: a copy or a touch of the same bytes keeps the fingerprint, and the feature cache).

    Image files that do not exist are named rather than stat'ed, so the fingerprint never raises for
    a dataset that ``load`` would report as broken.
    """
    present = [p for p in images if p.exists()]
    missing = sorted(str(p) for p in images if not p.exists()) if len(present) < len(images) else []
    return digest(
        kind,
        [(p.name, file_digest(p)) for p in tables],
        content_digest(present),
        missing,
    )
