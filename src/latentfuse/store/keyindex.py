"""Which shard and row of a shelf hold each content key, in flat numpy arrays.

A Python dict of key → (shard, row) (what the shelf kept before) holds ~180 bytes a key; here a key costs its
bytes (16) plus two int32s, and looking up a batch of keys is one ``searchsorted`` per run. ``bench/store_keys.py``
measures both side by side up to 10M keys (memory held and peak, build and lookup time).

Keys are added a shard at a time and sorted at the next lookup into a *run* (one sort for all the shards a
refresh reads); runs are merged once there are more than ``MAX_RUNS`` (so a long extraction's commits, each
followed by lookups, stay cheap). A key held by several shards resolves to the first added — the shards are
read in name order, as before — so the same store always gives the same rows.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_RUNS = 8


def as_bytes(keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """Keys as a fixed-width bytes array (content keys are ASCII; anything else is UTF-8 encoded)."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind == "S":
        return keys
    if not len(keys):
        return np.zeros(0, dtype="S1")
    try:
        return np.asarray(keys, dtype="S")
    except UnicodeEncodeError:
        return np.char.encode(np.asarray(keys, dtype=str), "utf-8")


class KeyIndex:
    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (sorted keys, shard, row), first wins
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # added, not sorted yet

    def add(self, keys: Sequence[str] | np.ndarray, shard: int) -> None:
        """The rows of shard number ``shard``: ``keys[row]`` is row ``row``."""
        encoded = as_bytes(keys)
        self._pending.append((encoded, np.full(len(encoded), shard, dtype=np.int32),
                              np.arange(len(encoded), dtype=np.int32)))

    def _sorted(self, merge: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._pending:
            self._runs.append(_run(*(np.concatenate(parts) for parts in zip(*self._pending))))
            self._pending = []
        if len(self._runs) > (1 if merge else MAX_RUNS):
            self._runs = [_run(*(np.concatenate(parts) for parts in zip(*self._runs)))]
        return self._runs

    def locate(self, keys: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row) int arrays for ``keys``; shard -1 where a key is not held."""
        query = as_bytes(keys)
        shard = np.full(len(query), -1, dtype=np.int32)
        row = np.zeros(len(query), dtype=np.int64)
        for run_keys, run_shard, run_row in self._sorted():
            todo = np.flatnonzero(shard < 0)
            if not len(todo) or not len(run_keys):
                continue
            at = np.searchsorted(run_keys, query[todo]).clip(0, len(run_keys) - 1)
            hit = run_keys[at] == query[todo]
            shard[todo[hit]], row[todo[hit]] = run_shard[at[hit]], run_row[at[hit]]
        return shard, row

    def __len__(self) -> int:
        """Distinct keys held."""
        runs = self._sorted(merge=True)
        return len(runs[0][0]) if runs else 0

    def count_in(self, keys: set[str]) -> int:
        """How many of ``keys`` are held."""
        return int(np.count_nonzero(self.locate(sorted(keys))[0] >= 0)) if keys else 0


def _run(keys: np.ndarray, shard: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted by key, each key once: its first occurrence (in the order given) kept."""
    order = np.argsort(keys, kind="stable")
    keys, shard, row = keys[order], shard[order], row[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], shard[first], row[first]
