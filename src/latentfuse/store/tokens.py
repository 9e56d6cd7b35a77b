"""Token features of encoder taps (``Encoder.encode_taps``), cached like pooled features: one shelf per tap
inside the encoder's (``feature_store``), filed by item content, so cache hits, ``--skip-bad`` records and
SIGKILL-resume behave exactly as for pooled features.

    <encoder>-<key>/tap-<name>[-g<grid>]/
        shard-<digest>.npy           float16 (tokens of all the shard's items, channels), memory-mappable
        shard-<digest>.offsets.npy   int64 (items + 1): item i's tokens are rows offsets[i]:offsets[i+1]
        shard-<digest>.keys.npy      the items' content keys (commits the shard)

Ragged storage (values + offsets) holds text taps at their true lengths — no padding is stored — and image
grids alike (equal lengths). Training pads per batch with a mask (``TokenFeatures.take``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..config import StoreConfig
from ..utils.logs import bars_off
from ..data import Item, Source, SplitData
from ..encoders import Encoder
from .extract import check_modality, encode_batches, split_bad, usage
from .feature_store import FeatureStore, Shelf, StoreError
from .keys import content_keys


@dataclass
class TokenFeatures:
    """Rows of one (dataset, split, side, encoder, tap): item ``i`` is a (length_i, channels) token array."""

    ids: list[str]
    shards: list[tuple[np.ndarray, np.ndarray]]  # (values (tokens, channels) float16 memmap, offsets int64)
    manifest: dict[str, Any]

    def __post_init__(self) -> None:
        self._starts = np.cumsum([0] + [len(offsets) - 1 for _, offsets in self.shards])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def channels(self) -> int:
        return int(self.manifest["dim"])

    def index(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}

    def lengths(self) -> np.ndarray:
        return np.concatenate([np.diff(offsets) for _, offsets in self.shards]) if self.shards else np.zeros(0, int)

    def item(self, row: int) -> np.ndarray:
        """Item ``row``'s tokens, (length, channels) float16 (a view into the memory map)."""
        shard = int(np.searchsorted(self._starts, row, side="right")) - 1
        values, offsets = self.shards[shard]
        local = row - int(self._starts[shard])
        return values[offsets[local]:offsets[local + 1]]

    def take(self, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (B, T_max, channels) right-padded with zeros, bool (B, T_max) mask of real tokens)."""
        items = [self.item(int(r)) for r in rows]
        width = max((len(t) for t in items), default=0)
        x = np.zeros((len(items), width, self.channels), dtype=np.float32)
        mask = np.zeros((len(items), width), dtype=bool)
        for i, tokens in enumerate(items):
            x[i, :len(tokens)] = tokens
            mask[i, :len(tokens)] = True
        return x, mask

    @classmethod
    def concat(cls, parts: list["TokenFeatures"]) -> "TokenFeatures":
        """Several row sets of the same tap (one per pool) as one, without copying: their shards in order."""
        widths = {part.channels for part in parts}
        if len(widths) != 1:
            raise StoreError(f"cannot join token features of different widths {sorted(widths)}")
        return cls([i for part in parts for i in part.ids], [s for part in parts for s in part.shards],
                   parts[0].manifest)

    def bytes_per_item(self) -> float:
        """Stored bytes per item (values + offsets), what a tap costs on disk."""
        total = sum(values.nbytes + offsets.nbytes for values, offsets in self.shards)
        return total / max(1, len(self.ids))


@dataclass
class TapInputs:
    """One side's token inputs for a method: several taps of the same items, rows aligned (same ids)."""

    taps: dict[str, TokenFeatures]

    def __post_init__(self) -> None:
        first = next(iter(self.taps.values()))
        for name, features in self.taps.items():
            if features.ids != first.ids:
                raise StoreError(f"tap {name!r} holds other items than tap {next(iter(self.taps))!r} (a --skip-bad "
                                 "decision differs between them); re-extract both with the same --skip-bad")
        self.ids = first.ids

    def __len__(self) -> int:
        return len(self.ids)

    def dims(self) -> dict[str, int]:
        return {name: features.channels for name, features in self.taps.items()}

    def take(self, rows: Sequence[int]) -> dict[str, tuple[Any, Any]]:
        """{tap: (float32 (B, T, C) tensor, bool (B, T) mask)} for ``rows``."""
        import torch

        out = {}
        for name, features in self.taps.items():
            x, mask = features.take(rows)
            out[name] = (torch.from_numpy(x), torch.from_numpy(mask))
        return out


def in_memory_tokens(items: list[np.ndarray], channels: int) -> TokenFeatures:
    """Token arrays of raw inputs just encoded (not from the store), in the same form as cached ones."""
    values, offsets = ragged(items, channels)
    return TokenFeatures([str(i) for i in range(len(items))], [(values, offsets)], {"dim": channels})


def tap_folder(tap: str, grid: int | None) -> str:
    return f"tap-{tap}" + (f"-g{grid}" if grid else "")


def get_tokens(source: Source, data: SplitData, side: str, encoder: Encoder, taps: Sequence[str],
               store: StoreConfig, *, skip_bad: bool = False, progress: bool = True) -> dict[str, TokenFeatures]:
    """Token features of ``taps`` for one side of a split, filed by item content like pooled features: stored
    rows are read, and the items some tap lacks are encoded in one pass of the encoder for every tap that
    lacks them, a shard at a time (a killed run resumes with what it committed)."""
    check_modality(source, data, side, encoder)
    if encoder.parts:  # an ensemble's taps are its first member's: cached (and reused) as that member's
        encoder = encoder.parts[0]
    taps = encoder.check_taps(taps)
    specs = encoder.taps()
    grid = getattr(encoder, "tap_grid", None) if encoder.modality == "image" else None
    feature_store = FeatureStore(store.root)
    shelves = {tap: feature_store.shelf(encoder.name, encoder.cache_key, tap_folder(tap, grid)) for tap in taps}
    items = data.items[side]
    keys = content_keys([item.payload for item in items], encoder.modality)
    _extract_missing(encoder, items, keys, shelves, store, skip_bad, progress, f"{encoder.name} {data.split}/{side}")
    out = {}
    for tap, shelf in shelves.items():
        ids, kept, skipped = split_bad(shelf, items, keys, skip_bad)
        manifest = {"complete": True, "encoder": encoder.name, "tap": tap, "tokens": specs[tap].tokens,
                    "grid": grid, "dim": specs[tap].channels, "skipped": skipped}
        whole = shelf.whole_shards(kept)
        shards = ([(shelf.values(k), shelf.offsets(k)) for k in whole] if whole is not None  # memory-mapped as stored
                  else [ragged(shelf.token_rows(kept), specs[tap].channels)])  # rows from here and there: gathered
        out[tap] = TokenFeatures(ids, shards, manifest)
        feature_store.remember(usage(source, data, side, encoder.name, shelf.directory, feature_store), keys)
    return out


def _extract_missing(encoder: Encoder, items: Sequence[Item], keys: list[str], shelves: dict[str, Shelf],
                     store: StoreConfig, skip_bad: bool, progress: bool, label: str) -> None:
    lacking_of: dict[str, list[str]] = {}
    todo: dict[str, Item] = {}
    for tap, shelf in shelves.items():
        for key in shelf.missing(keys):
            lacking_of.setdefault(key, []).append(tap)
    for key, item in zip(keys, items):
        if key in lacking_of:
            todo.setdefault(key, item)
    if not todo:
        return
    pending = list(todo.items())
    with tqdm(total=len(pending), desc=f"{label} taps", unit=encoder.modality, disable=bars_off(progress),
              file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(pending), store.shard_size):
            chunk = pending[start:start + store.shard_size]
            lacking = [tap for tap in shelves if any(tap in lacking_of[key] for key, _ in chunk)]
            ids, batches, skipped = encode_batches(lambda p, wanted=lacking: encoder.encode_taps(p, wanted), [i for _, i in chunk],
                                                   store.batch_size, skip_bad, bar.update)
            key_of = {item.id: key for key, item in chunk}
            for tap in lacking:
                tokens = [t for batch in batches for t in batch[tap]]
                values, offsets = ragged(tokens, encoder.taps()[tap].channels)
                shelves[tap].commit([key_of[i] for i in ids], values, {key_of[i]: r for i, r in skipped},
                                    offsets=offsets)


def ragged(tokens: list[np.ndarray], channels: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in tokens])
    values = np.concatenate(tokens) if tokens else np.zeros((0, channels), dtype=np.float32)
    return values, offsets
