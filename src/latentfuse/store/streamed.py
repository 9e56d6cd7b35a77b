"""Training on more features than fit in memory: rows read from the memory-mapped store shards a batch at a time,
in an order that reads the disk forward.

``StreamedRows`` stands where a side's float32 feature matrix stands (``PairedFeatures.x``): indexing it with a
batch's rows gathers them from their shards (grouped by shard, each shard's rows read in ascending order) and
returns a float32 tensor. Nothing but two small index arrays per side stays in memory.

``chunked_order`` is the shuffle that makes those reads cheap: the pairs are cut into contiguous chunks, the
chunks are permuted, and the rows of every ``window`` consecutive chunks are shuffled together — so a batch
touches a few regions of the disk and an epoch reads each region about once, while every batch still mixes
rows from ``window`` distant places (the scheme of WebDataset's shard shuffle + buffer, and FFCV's quasi-random
order). The same seed gives the same order whether the rows are in memory or streamed, so the two train alike
exactly (tested).

``read_ahead`` builds the next batches on a worker thread while the current one trains.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

CHUNK = 4096  # pairs per contiguous chunk of the chunked shuffle
WINDOW = 16  # chunks whose rows are shuffled together (a batch mixes rows of up to this many places)


class StreamedRows:
    """One side's pooled features, left in the store's memory-mapped shards: ``x[rows]`` → float32 tensor."""

    def __init__(self, shelf: Any, keys: Sequence[str]) -> None:
        self.shard, self.row = shelf.locate(keys)
        self._shelf = shelf
        self.shape = (len(keys), shelf.dim() if len(keys) else 0)

    def __len__(self) -> int:
        return self.shape[0]

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), dim): each shard read once, its rows in ascending order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        shards = self.shard[rows]
        for shard in np.unique(shards):
            at = np.flatnonzero(shards == shard)
            local = self.row[rows[at]]
            order = np.argsort(local, kind="stable")
            out[at[order]] = self._shelf.values(int(shard))[local[order]]
        return out

    def __getitem__(self, rows: Any) -> torch.Tensor:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        elif isinstance(rows, torch.Tensor):
            rows = rows.cpu().numpy()
        return torch.from_numpy(self.gather(np.asarray(rows)))


class JoinedRows(StreamedRows):
    """An ensemble's side, streamed: each member's rows gathered from its own shards and joined per batch
    (``join``: the ensemble encoder's), rounded through float16 as the joined features held in memory are —
    so streamed and in-memory training see the same numbers."""

    def __init__(self, members: Sequence[StreamedRows], positions: Sequence[np.ndarray],
                 join: Callable[[Sequence[np.ndarray]], np.ndarray]) -> None:
        self.members, self.positions, self.join = list(members), [np.asarray(p) for p in positions], join
        count = len(self.positions[0]) if self.positions else 0
        self.shape = (count, sum(member.shape[1] for member in self.members) if count else 0)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        parts = [member.gather(at[rows]) for member, at in zip(self.members, self.positions)]
        return self.join(parts).astype(np.float16).astype(np.float32)


def chunked_order(n: int, generator: torch.Generator, chunk: int = 0, window: int = 0) -> torch.Tensor:
    """A permutation of ``range(n)``: chunks of ``chunk`` (default ``CHUNK``) consecutive positions in a random
    order, the positions of each ``window`` (``WINDOW``) consecutive chunks of that order shuffled together."""
    chunk, window = chunk or CHUNK, window or WINDOW
    starts = torch.arange(0, n, chunk)[torch.randperm((n + chunk - 1) // chunk, generator=generator)]
    parts = []
    for first in range(0, len(starts), window):
        positions = torch.cat([torch.arange(int(s), min(int(s) + chunk, n)) for s in starts[first:first + window]])
        parts.append(positions[torch.randperm(len(positions), generator=generator)])
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def read_ahead(make: Callable[[int], Any], count: int, depth: int = 2) -> Iterator[Any]:
    """``make(0) … make(count - 1)``, in order, each built on a worker thread up to ``depth`` steps ahead."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentfuse-read-ahead") as pool:
        pending = [pool.submit(make, step) for step in range(min(depth, count))]
        for step in range(count):
            batch = pending.pop(0).result()
            if step + depth < count:
                pending.append(pool.submit(make, step + depth))
            yield batch


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux, else the physical total)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
