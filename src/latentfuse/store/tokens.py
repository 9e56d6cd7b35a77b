"""Token features of encoder taps (``Encoder.encode_taps``), cached like pooled features: one folder per
tap beside the pooled features, float16 shards committed atomically and listed in a manifest, so cache hits,
``--skip-bad`` records and SIGKILL-resume behave exactly as for pooled features.

    <encoder>-<fp>/tap-<name>[-g<grid>]/
        manifest.json             as for pooled features, plus "tap", "tokens" (fixed count or null)
        shard-00000.npy           float16 (tokens of all the shard's items, channels), memory-mappable
        shard-00000.offsets.npy   int64 (items + 1): item i's tokens are rows offsets[i]:offsets[i+1]
        shard-00000.ids.json

Ragged storage (values + offsets) holds text taps at their true lengths — no padding is stored — and image
grids alike (equal lengths). Training pads per batch with a mask (``TokenFeatures.take``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..config import StoreConfig
from ..data import Source, SplitData
from ..encoders import Encoder
from .extract import check_modality, encode_batches, refuse_skipped
from .feature_store import FeatureStore, StoreError, read_manifest, read_shards


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
    values, offsets = _ragged(items, channels)
    return TokenFeatures([str(i) for i in range(len(items))], [(values, offsets)], {"dim": channels})


def tap_folder(tap: str, grid: int | None) -> str:
    return f"tap-{tap}" + (f"-g{grid}" if grid else "")


def get_tokens(source: Source, data: SplitData, side: str, encoder: Encoder, taps: Sequence[str],
               store: StoreConfig, *, parent: SplitData | None = None, skip_bad: bool = False,
               progress: bool = True) -> dict[str, TokenFeatures]:
    """Token features of ``taps`` for one side of a split: cached ones read, missing shards extracted in
    one pass of the encoder for every tap that lacks them (a killed run resumes at the first shard
    some tap lacks). ``parent``: the full split ``data`` was taken from (``head``, ``subset``); when its
    taps are complete in the store, the subset's rows are copied from them instead of encoding."""
    modality = check_modality(source, data, side, encoder)
    if encoder.parts:  # an ensemble's taps are its first member's: cached (and reused) as that member's
        encoder = encoder.parts[0]
    taps = encoder.check_taps(taps)
    specs = encoder.taps()
    grid = getattr(encoder, "tap_grid", None) if encoder.modality == "image" else None
    feature_store = FeatureStore(store.root)
    if parent is not None and parent is not data:
        parent_base = feature_store.directory(source.feature_namespace, source.fingerprint, parent.split, side, encoder.name,
                                              encoder.cache_key)
        rows = {tap: _rows_of_parent(parent_base / tap_folder(tap, grid), data, side) for tap in taps}
        if all(features is not None for features in rows.values()):
            if not skip_bad:
                for tap_features in rows.values():
                    refuse_skipped(tap_features, data, side)
            return rows  # type: ignore[return-value]
    base = feature_store.directory(source.feature_namespace, source.fingerprint, data.split, side, encoder.name,
                                   encoder.cache_key)
    items = data.items[side]
    writers = {}
    for tap in taps:
        header = {"dataset": source.spec, "dataset_fingerprint": source.fingerprint, "split": data.split,
                  "side": side, "modality": modality, "encoder": encoder.name,
                  "encoder_fingerprint": encoder.fingerprint, "tap": tap, "tokens": specs[tap].tokens,
                  "grid": grid, "dim": specs[tap].channels}
        writers[tap] = feature_store.writer(base / tap_folder(tap, grid), header, [item.id for item in items],
                                            store.shard_size)
    _extract_missing(encoder, items, writers, store, skip_bad, progress, f"{encoder.name} {data.split}/{side}")
    features = {tap: read_tokens(writer.directory) for tap, writer in writers.items()}
    if not skip_bad:
        for tap_features in features.values():
            refuse_skipped(tap_features, data, side)
    return features


def _rows_of_parent(directory: Path, data: SplitData, side: str) -> TokenFeatures | None:
    """``data``'s rows copied from a parent split's complete tap folder, or None when they are not all there."""
    manifest = read_manifest(directory)
    if manifest is None or not manifest.get("complete"):
        return None
    full = read_tokens(directory)
    index = full.index()
    skipped = {entry["id"] for entry in manifest.get("skipped", [])}
    wanted = [item.id for item in data.items[side] if item.id not in skipped]
    if any(item_id not in index for item_id in wanted):
        return None
    values, offsets = _ragged([full.item(index[item_id]) for item_id in wanted], full.channels)
    return TokenFeatures(wanted, [(values, offsets)], manifest)


def _extract_missing(encoder: Encoder, items: Sequence[Any], writers: dict[str, Any], store: StoreConfig,
                     skip_bad: bool, progress: bool, label: str) -> None:
    shard_size = store.shard_size
    n_shards = next(iter(writers.values())).n_shards
    todo = [k for k in range(n_shards) if any(k not in w.done() for w in writers.values())]
    if todo:
        remaining = sum(len(items[k * shard_size:(k + 1) * shard_size]) for k in todo)
        with tqdm(total=remaining, desc=f"{label} taps", unit=encoder.modality, disable=not progress,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for k in todo:
                lacking = [tap for tap, w in writers.items() if k not in w.done()]
                shard_items = items[k * shard_size:(k + 1) * shard_size]
                ids, batches, skipped = encode_batches(lambda p: encoder.encode_taps(p, lacking), shard_items,
                                                       store.batch_size, skip_bad, bar.update)
                for tap in lacking:
                    tokens = [t for batch in batches for t in batch[tap]]
                    values, offsets = _ragged(tokens, writers[tap].manifest["dim"])
                    writers[tap].commit(k, ids, values, skipped, offsets=offsets)
    for writer in writers.values():
        if todo or not writer.manifest.get("complete"):
            writer.finish([], writer.manifest["dim"])


def _ragged(tokens: list[np.ndarray], channels: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in tokens])
    values = np.concatenate(tokens) if tokens else np.zeros((0, channels), dtype=np.float32)
    return values, offsets


def read_tokens(directory: Path) -> TokenFeatures:
    """A complete tap folder, memory-mapped; an unfinished or damaged one is a StoreError naming it."""
    manifest, ids, shards = read_shards(directory, "token features", "latentfuse extract --layers", offsets=True)
    for shard, (values, offsets) in zip(manifest["shards"], shards):
        if len(offsets) != shard["rows"] + 1 or int(offsets[-1]) != len(values):
            raise StoreError(f"{directory}: shard {shard['file']} and its offsets disagree; delete the folder "
                             "to re-extract")
    return TokenFeatures(ids, shards, manifest)
