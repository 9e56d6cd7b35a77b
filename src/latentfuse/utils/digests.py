"""Content identity of many files, fast on re-runs: per-file digests cached by (path, size, mtime).

A dataset's fingerprint keys its feature cache. Stat data alone (size, mtime) changes whenever files are
copied, restored or re-downloaded, which would throw away hours of cached features for identical bytes;
hashing every image on every run would be slow for large collections. So each file is hashed once, and its
digest is remembered in a small SQLite table keyed by (absolute path, size, mtime_ns): a file whose stat
is unchanged is not read again, and a file that was only touched is re-hashed to the same digest.

The table lives at ``$LATENTFUSE_DIGESTS`` (default ``~/.cache/latentfuse/file-digests.sqlite3``). If it
cannot be opened (read-only home), files are simply hashed every time.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from .hashing import file_digest, not_regular


def digest_db() -> Path:
    return Path(os.environ.get("LATENTFUSE_DIGESTS")
                or Path.home() / ".cache" / "latentfuse" / "file-digests.sqlite3")


# (absolute path) -> (size, mtime_ns, digest) already looked up in this process: a source's fingerprint is
# read several times per run (every split and side names its cache directory with it), and each of those
# reads must cost a stat per file, not a database query and a hash.
_SEEN: dict[str, tuple[int, int, str]] = {}
_QUERY_CHUNK = 500  # SQLite's default limit on host parameters is 999


def file_digests(paths: list[Path]) -> dict[Path, str]:
    """Content digest of every file, reusing remembered digests whose (size, mtime_ns) still match."""
    stats = {path: (os.path.abspath(path), path.stat()) for path in paths}
    out: dict[Path, str] = {}
    misses: dict[Path, tuple[str, os.stat_result]] = {}
    for path, (key, st) in stats.items():
        seen = _SEEN.get(key)
        if seen is not None and seen[:2] == (st.st_size, st.st_mtime_ns):
            out[path] = seen[2]
        else:
            misses[path] = (key, st)
    if misses:
        out.update(_look_up_or_hash(misses))
    return out


def _look_up_or_hash(misses: dict[Path, tuple[str, os.stat_result]]) -> dict[Path, str]:
    """Digests from the SQLite table where its (size, mtime_ns) match, else by reading the file."""
    connection = _connect()
    known = _remembered(connection, [key for key, _ in misses.values()])
    out: dict[Path, str] = {}
    fresh: list[tuple[str, int, int, str]] = []
    for path, (key, st) in misses.items():
        cached = known.get(key)
        if not_regular(st.st_mode):  # named, never read (a FIFO blocks); decoding it reports the item
            out[path] = "not-a-file:" + not_regular(st.st_mode)
            continue
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
            out[path] = cached[2]
        else:
            out[path] = file_digest(path)
            fresh.append((key, st.st_size, st.st_mtime_ns, out[path]))
        _SEEN[key] = (st.st_size, st.st_mtime_ns, out[path])
    _remember(connection, fresh)
    return out


def _remembered(connection: sqlite3.Connection | None, names: list[str]) -> dict[str, tuple[int, int, str]]:
    """name → (size, mtime_ns, digest) of the names the table holds."""
    known: dict[str, tuple[int, int, str]] = {}
    if connection is None:
        return known
    for start in range(0, len(names), _QUERY_CHUNK):
        chunk = names[start:start + _QUERY_CHUNK]
        rows = connection.execute(f"SELECT path, size, mtime_ns, digest FROM files WHERE path IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall()
        known.update({path: (size, mtime, digest) for path, size, mtime, digest in rows})
    return known


def _remember(connection: sqlite3.Connection | None, fresh: list[tuple[str, int, int, str]]) -> None:
    if connection is not None:
        with connection:
            connection.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", fresh)
        connection.close()


def blob_digests(blobs: list[Any], length: int = 16) -> dict[Any, str]:
    """Content digest of image bytes inside other files (``utils.blobs``: each names its ``container`` file),
    remembered like a file's under ``CONTAINER::MEMBER`` with the container's (size, mtime_ns): a re-run over
    unchanged shards costs a stat per shard, not a read per image. An unreadable blob is left out."""
    stats: dict[str, os.stat_result | None] = {}
    for blob in blobs:
        if blob.container not in stats:
            try:
                stats[blob.container] = os.stat(blob.container)
            except OSError:
                stats[blob.container] = None
    keys = {blob: f"{os.path.abspath(blob.container)}::{blob.member}" for blob in blobs
            if stats[blob.container] is not None}
    connection = _connect()
    known = _remembered(connection, list(keys.values()))
    out: dict[Any, str] = {}
    fresh: list[tuple[str, int, int, str]] = []
    for blob, key in keys.items():
        st = stats[blob.container]
        cached = known.get(key)
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
            out[blob] = cached[2]
            continue
        try:
            out[blob] = hashlib.sha256(blob.read_bytes()).hexdigest()[:length]
        except OSError:
            continue
        fresh.append((key, st.st_size, st.st_mtime_ns, out[blob]))
    _remember(connection, fresh)
    return out


def content_digest(paths: list[Path], length: int = 16) -> str:
    """One digest for a set of files: their names and contents (order-independent)."""
    digests = file_digests(list(paths))
    h = hashlib.sha256()
    for path in sorted(digests, key=lambda p: p.parts):  # Path order, without slow Path comparisons
        h.update(f"{path.name}\0{digests[path]}\n".encode())
    return h.hexdigest()[:length]


def _connect() -> sqlite3.Connection | None:
    path = digest_db()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30)
        connection.execute("CREATE TABLE IF NOT EXISTS files "
                           "(path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, digest TEXT)")
        return connection
    except (OSError, sqlite3.Error):
        return None
