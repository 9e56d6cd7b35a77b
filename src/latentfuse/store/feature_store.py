"""On-disk layout of the content-addressed feature cache (keys: ``store.keys``).

    ROOT/v2/<encoder>-<cache key>/            one shelf per encoder (its fingerprint, + precision)
        shard-<digest>.npy                    float16 (rows, dim), memory-mappable
        shard-<digest>.bad.json               items the encoder refused in that shard: {key: reason}
        shard-<digest>.keys.npy               the rows' content keys, in order; written last, it commits the shard
    ROOT/v2/<encoder>-<cache key>/tap-<name>[-g<grid>]/
        ...                                   the same for a tap's token features, plus shard-<digest>.offsets.npy
    ROOT/refs/<digest>.json (+ .keys.npy)     which keys a (data, split, side, encoder[, tap]) used last:
                                              what `latentfuse cache` counts and `latentfuse cache gc` keeps

Every file is written to a temporary name and renamed into place, and a shard counts only once its keys file
is there. A run killed at any instant therefore leaves whole shards plus perhaps files a later run overwrites;
two runs that encode the same items write the same shard names. Nothing is ever appended to or rewritten in
place, so readers need no lock.
"""
from __future__ import annotations

import errno
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DataError
from ..utils import atomic
from ..utils.hashing import digest
from .keyindex import KeyIndex

log = logging.getLogger(__name__)

LAYOUT = "v2"
STORE_DTYPE = np.float16
KEYS_SUFFIX = ".keys.npy"


class StoreError(DataError):
    """The feature cache cannot be written (read-only, permission denied, disk full) or is damaged."""


@contextmanager
def writable(directory: Path) -> Iterator[None]:
    """Turn a failed cache write into one line that names the folder and says what to do."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk (or quota) holding it is full"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "it is read-only or not writable by this user"
        else:
            why = exc.strerror or str(exc)
        raise StoreError(f"cannot write to the feature cache at {directory}: {why}. Finished shards are kept; "
                         "free space and re-run to resume, or point --store / $LATENTFUSE_CACHE elsewhere") from None


@dataclass
class Features:
    """Rows of one side of a split under one encoder: ``array[i]`` is the feature of ``ids[i]``.
    ``manifest``: the encoder, ``dim`` and ``skipped`` ({id, reason} of the items dropped by ``--skip-bad``)."""

    ids: list[str]
    array: np.ndarray  # float16, (len(ids), dim); memory-mapped when the rows are one stored shard in order
    manifest: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def index(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:48] or "x"


@dataclass
class Shard:
    name: str
    size: int  # rows
    bad: dict[str, str] = field(default_factory=dict)


class Shelf:
    """The committed shards of one encoder (or one tap of it): which keys it holds, and their rows."""

    def __init__(self, directory: Path, tokens: bool = False) -> None:
        self.directory = directory
        self.tokens = tokens
        self.shards: list[Shard] = []
        self.index = KeyIndex()  # key → (shard position, row)
        self.bad: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read which shards are committed (another process may have added some)."""
        names = sorted(p.name[:-len(KEYS_SUFFIX)] for p in self.directory.glob(f"shard-*{KEYS_SUFFIX}")) \
            if self.directory.is_dir() else []
        self.shards, self.index, self.bad = [], KeyIndex(), {}
        for name in names:
            try:
                keys = np.load(self.directory / f"{name}{KEYS_SUFFIX}")
                bad_file = self.directory / f"{name}.bad.json"
                bad = json.loads(bad_file.read_text()) if bad_file.exists() else {}
            except (OSError, ValueError, EOFError) as exc:
                raise StoreError(f"{self.directory / name}: damaged shard ({exc}); delete its files, or run "
                                 "`latentfuse cache gc`, to encode those items again") from None
            self.index.add(keys, len(self.shards))
            self.shards.append(Shard(name, len(keys), bad))
            self.bad.update(bad)

    def __len__(self) -> int:
        """Distinct keys stored."""
        return len(self.index)

    def missing(self, keys: Sequence[str]) -> list[str]:
        """``keys`` neither stored nor recorded as bad, each once, in order."""
        unique = list(dict.fromkeys(keys))
        stored = self.index.locate(unique)[0] >= 0
        return [k for k, held in zip(unique, stored) if not held and k not in self.bad]

    def locate(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shard position, row) of every key; a key not stored is a StoreError naming it."""
        shard, row = self.index.locate(keys)
        if len(shard) and shard.min() < 0:
            key = keys[int(np.argmin(shard))]
            raise StoreError(f"{self.directory}: no stored features for key {key!r} (the cache changed while it was "
                             "read?); run again to encode it")
        return shard, row

    def shard_keys(self, position: int) -> list[str]:
        """The keys of shard ``position``, row by row (read from its keys file)."""
        return self._load(self.shards[position].name, KEYS_SUFFIX[1:], mmap=False).tolist()

    def commit(self, keys: Sequence[str], values: np.ndarray, bad: dict[str, str],
               offsets: np.ndarray | None = None) -> None:
        """Write one shard atomically: values (and offsets), bad records, then the keys that commit it."""
        rows = len(offsets) - 1 if offsets is not None else values.shape[0]
        if values.ndim != 2 or rows != len(keys):
            raise ValueError(f"{len(keys)} keys but values of shape {values.shape}")
        name = f"shard-{digest(list(keys), sorted(bad))}"
        with writable(self.directory):
            self.directory.mkdir(parents=True, exist_ok=True)
            _save(self.directory / f"{name}.npy", np.ascontiguousarray(values, dtype=STORE_DTYPE))
            if offsets is not None:
                _save(self.directory / f"{name}.offsets.npy", np.asarray(offsets, dtype=np.int64))
            if bad:
                atomic.write_text(self.directory / f"{name}.bad.json", json.dumps(bad))
            _save(self.directory / f"{name}{KEYS_SUFFIX}", np.asarray(list(keys), dtype=f"<U{_width(keys)}"))
        self.index.add(list(keys), len(self.shards))
        self.shards.append(Shard(name, len(keys), dict(bad)))
        self.bad.update(bad)

    def values(self, position: int) -> np.ndarray:
        return self._load(self.shards[position].name, "npy", mmap=True)

    def offsets(self, position: int) -> np.ndarray:
        return self._load(self.shards[position].name, "offsets.npy", mmap=False)

    def _load(self, name: str, suffix: str, mmap: bool) -> np.ndarray:
        path = self.directory / f"{name}.{suffix}"
        try:
            return np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError, EOFError) as exc:
            raise StoreError(f"{path}: damaged or missing ({exc}); delete it with its .keys.npy, or run "
                             "`latentfuse cache gc`, to encode those items again") from None

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """float16 (len(keys), dim): every key must be stored. One whole shard in order is its memory map."""
        if not len(keys):
            return np.zeros((0, self.dim()), dtype=STORE_DTYPE)
        shard, row = self.locate(keys)
        whole = self._whole(shard, row)
        if whole is not None and len(whole) == 1:
            return self.values(whole[0])
        out = np.empty((len(keys), self.values(int(shard[0])).shape[1]), dtype=STORE_DTYPE)
        for position in np.unique(shard):
            at = np.flatnonzero(shard == position)
            out[at] = self.values(int(position))[row[at]]
        return out

    def whole_shards(self, keys: Sequence[str]) -> list[int] | None:
        """The positions of the shards ``keys`` are, whole and in order, or None (then rows are gathered)."""
        return self._whole(*self.locate(keys)) if len(keys) else None

    def _whole(self, shard: np.ndarray, row: np.ndarray) -> list[int] | None:
        positions, at = [], 0
        while at < len(shard):
            position, size = int(shard[at]), self.shards[int(shard[at])].size
            if not (np.array_equal(row[at:at + size], np.arange(size)) and np.all(shard[at:at + size] == position)):
                return None
            positions.append(position)
            at += size
        return positions or None

    def token_rows(self, keys: Sequence[str]) -> list[np.ndarray]:
        """Each key's (length, channels) float16 tokens, views into the memory-mapped shards."""
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        out = []
        for position, row in zip(*(part.tolist() for part in self.locate(keys))):
            if position not in cache:
                cache[position] = (self.values(position), self.offsets(position))
            values, offsets = cache[position]
            out.append(values[offsets[row]:offsets[row + 1]])
        return out

    def dim(self) -> int:
        return int(self.values(0).shape[1]) if self.shards else 0


def _width(keys: Sequence[str]) -> int:
    return max((len(k) for k in keys), default=1)


def _save(path: Path, array: np.ndarray) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


class FeatureStore:
    """The cache root: a shelf per encoder (and tap), and the records of who used which keys."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def shelf(self, encoder_name: str, cache_key: str, tap: str = "") -> Shelf:
        self.warn_old_layout()
        directory = self.root / LAYOUT / f"{slug(encoder_name)}-{cache_key[:16]}"
        return Shelf(directory / tap if tap else directory, tokens=bool(tap))

    def remember(self, usage: dict[str, str], keys: Sequence[str]) -> None:
        """Record that ``usage`` (data, split, side, encoder, shelf) read ``keys`` — replacing what it read
        before, so an edited caption's old row is no longer referenced."""
        name = digest(usage["data"], usage["split"], usage["side"], usage["shelf"])
        refs = self.root / "refs"
        try:
            refs.mkdir(parents=True, exist_ok=True)
            _save(refs / f"{name}{KEYS_SUFFIX}", np.asarray(list(keys), dtype=f"<U{_width(keys)}"))
            atomic.write_json(refs / f"{name}.json", {**usage, "items": len(keys)})
        except OSError as exc:  # the features are there; only the bookkeeping for `cache gc` is lost
            log.warning("could not record the cache's use in %s (%s)", refs, exc.strerror or exc)

    _warned: set[Path] = set()

    def warn_old_layout(self) -> None:
        """An older cache (one folder per dataset, ``manifest.json``) is not read; say so once per root."""
        if self.root in FeatureStore._warned:
            return
        FeatureStore._warned.add(self.root)
        if old_folders(self.root):
            log.warning("%s holds features in the older per-dataset layout, which this version does not read: "
                        "items are encoded again into the content-addressed layout; `latentfuse cache gc` "
                        "removes the old folders", self.root)


def old_folders(root: Path) -> list[Path]:
    """Top-level folders of the older per-dataset layout (they hold ``*/*/*/manifest.json``)."""
    if not root.is_dir():
        return []
    return [p for p in root.iterdir()
            if p.is_dir() and p.name not in (LAYOUT, "refs") and next(p.glob("*/*/*/manifest.json"), None)]
