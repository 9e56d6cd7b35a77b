"""The one way to get frozen features of a split: ``get_features`` (lookup by content, extraction of what is
missing — shard by shard, cached and resumable).

Every consumer — training, every evaluator, the index — calls ``get_features``; none reads the store's
layout itself; token taps go through ``store.tokens.get_tokens``, filed the same way.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from tqdm.auto import tqdm

from ..config import StoreConfig
from ..utils.logs import bars_off
from ..data import Item, Source, SplitData
from ..encoders import Encoder
from ..encoders.base import BadItemError
from ..errors import DataError
from .feature_store import Features, FeatureStore
from .keys import content_keys
from .streamed import JoinedRows, StreamedRows

T = TypeVar("T")
DEFAULT_SHARD_SIZE = 2048
DEFAULT_BATCH_SIZE = 64


def encode_items(encoder: Encoder, items: Sequence[Item], batch_size: int, skip_bad: bool,
                 on_batch=None) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Encode items in batches. A bad item raises, or with ``skip_bad`` is dropped and reported.

    Pure function of its inputs, so a distributed runner (e.g. Ray Data ``map_batches``) can call it
    on any slice of the item list.
    """
    ids, rows, skipped = encode_batches(
        lambda payloads: np.asarray(encoder.encode(payloads), dtype=np.float32), items, batch_size, skip_bad,
        on_batch)
    array = np.concatenate(rows) if rows else np.zeros((0, encoder.dim), dtype=np.float32)
    return ids, array, skipped


def encode_batches(encode: Callable[[list[Any]], T], items: Sequence[Item], batch_size: int, skip_bad: bool,
                   on_batch=None) -> tuple[list[str], list[T], list[tuple[str, str]]]:
    """``encode`` over batches of payloads → (ids kept, one result per batch, skipped (id, reason)).

    The raise-or-skip policy for bad items in one place, for pooled features and token taps alike: a bad
    item is named with its origin (file and row), or with ``skip_bad`` dropped and its batch re-encoded."""
    ids: list[str] = []
    results: list[T] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, len(items), batch_size):
        batch = list(items[start:start + batch_size])
        while batch:
            try:
                results.append(encode([item.payload for item in batch]))
                ids.extend(item.id for item in batch)
                break
            except BadItemError as exc:
                bad = batch[exc.index]
                where = f" ({bad.origin})" if bad.origin else ""
                if not skip_bad:
                    raise DataError(f"{exc}{where}; pass --skip-bad to skip such items") from exc
                skipped.append((bad.id, exc.reason))
                batch.pop(exc.index)
        if on_batch is not None:
            on_batch(min(batch_size, len(items) - start))
    return ids, results, skipped


def get_features(source: Source, data: SplitData, side: str, encoder: Encoder, store: StoreConfig, *,
                 skip_bad: bool = False, progress: bool = True, stream: bool = False) -> Features:
    """Features of one side of ``data`` (a split, or a named subset of one), from the cache when possible.

    Rows are filed by item content (``store.keys``), so whatever any earlier run encoded with this encoder —
    another split, another source over the same photos, a table before one caption was edited, a killed run —
    is read, and only the rest is encoded, shard by shard. ``stream``: the rows stay in their memory-mapped
    shards (``streamed.StreamedRows``), for training on more features than fit in memory.
    """
    check_modality(source, data, side, encoder)
    if encoder.parts:
        return _joined(source, data, side, encoder, store, skip_bad=skip_bad, progress=progress, stream=stream)
    items = data.items[side]
    keys = content_keys([item.payload for item in items], encoder.modality)
    feature_store = FeatureStore(store.root)
    shelf = feature_store.shelf(encoder.name, encoder.cache_key)
    todo = _unique_missing(shelf, items, keys)
    if todo and store.engine == "ray":
        from .ray_engine import extract_shards

        extract_shards(encoder, todo, shelf, store, skip_bad, progress, f"{encoder.name} {data.split}/{side}")
    elif todo:
        _encode_into(shelf, encoder, todo, store, skip_bad, progress, f"{encoder.name} {data.split}/{side}")
    ids, kept, skipped = split_bad(shelf, items, keys, skip_bad)
    if stream:
        array: Any = StreamedRows(shelf, kept)
    else:
        array = shelf.rows(kept) if kept else np.zeros((0, encoder.dim), dtype=np.float16)
    feature_store.remember(usage(source, data, side, encoder.name, shelf.directory, feature_store), keys)
    manifest = {"complete": True, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint,
                "dim": int(array.shape[1]) if len(array) else encoder.dim, "skipped": skipped}
    return Features(ids, array, manifest)


def usage(source: Source, data: SplitData, side: str, encoder: str, shelf: Path, store: FeatureStore
          ) -> dict[str, str]:
    """What a reference record says: which data, split and side read which shelf (relative to the root)."""
    return {"data": source.spec, "split": data.split, "side": side, "encoder": encoder,
            "shelf": shelf.relative_to(store.root).as_posix()}


def _unique_missing(shelf: Any, items: Sequence[Item], keys: list[str]) -> list[tuple[str, Item]]:
    """(key, item) for each key the shelf lacks, once each, in the items' order."""
    missing = set(shelf.missing(keys))
    todo: dict[str, Item] = {}
    for key, item in zip(keys, items):
        if key in missing and key not in todo:
            todo[key] = item
    return list(todo.items())


def _encode_into(shelf: Any, encoder: Encoder, todo: list[tuple[str, Item]], store: StoreConfig, skip_bad: bool,
                 progress: bool, label: str) -> None:
    """Encode ``todo`` in this process, committing a shard every ``store.shard_size`` items."""
    size = store.shard_size
    with tqdm(total=len(todo), desc=label, unit=encoder.modality, disable=bars_off(progress), file=sys.stderr,
              dynamic_ncols=True) as bar:
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            ids, array, skipped = encode_items(encoder, [item for _, item in chunk], store.batch_size, skip_bad,
                                               bar.update)
            by_id = {item.id: key for key, item in chunk}
            shelf.commit([by_id[i] for i in ids], array, {by_id[i]: reason for i, reason in skipped})


def split_bad(shelf: Any, items: Sequence[Item], keys: list[str], skip_bad: bool
              ) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """(ids kept, their keys, skipped {id, reason}). A strict run refuses an item an earlier ``--skip-bad``
    run recorded as bad: the cache remembers the decision, but only a run that asked for it inherits it."""
    ids, kept, skipped = [], [], []
    for item, key in zip(items, keys):
        reason = shelf.bad.get(key)
        if reason is None:
            ids.append(item.id)
            kept.append(key)
        elif not skip_bad:
            where = f" ({item.origin})" if item.origin else ""
            raise DataError(f"{item.id}: {reason}{where} (recorded when an earlier --skip-bad run skipped it; "
                            "pass --skip-bad to skip such items)")
        else:
            skipped.append({"id": item.id, "reason": reason})
    return ids, kept, skipped


def _joined(source: Source, data: SplitData, side: str, encoder: Encoder, store: StoreConfig, *,
            skip_bad: bool, progress: bool, stream: bool) -> Features:
    """An ensemble's features: each member's from the store (cached on its own), joined on the items every
    member has (a ``--skip-bad`` item dropped by one is dropped from the ensemble); with ``stream``, joined a
    batch at a time as training reads them (``streamed.JoinedRows``)."""
    members = [get_features(source, data, side, part, store, skip_bad=skip_bad, progress=progress, stream=stream)
               for part in encoder.parts]
    common = set.intersection(*(set(m.ids) for m in members))
    ids = [item_id for item_id in members[0].ids if item_id in common]
    positions = [np.arange(len(ids)) if member.ids == ids else
                 np.array([member.index()[i] for i in ids], dtype=np.int64) for member in members]
    skipped = {entry["id"]: entry for m in members for entry in m.manifest.get("skipped", [])}
    manifest = {"complete": True, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint,
                "members": [m.manifest.get("encoder") for m in members], "skipped": list(skipped.values())}
    if stream:
        return Features(ids, JoinedRows([m.array for m in members], positions, encoder.join), manifest)
    arrays = [m.array if m.ids == ids else m.array[at] for m, at in zip(members, positions)]
    return Features(ids, encoder.join(arrays).astype(np.float16), manifest)


def check_modality(source: Source, data: SplitData, side: str, encoder: Encoder) -> str:
    """The side's modality, or a DataError when the encoder embeds another one."""
    modality = data.side(side).modality
    if encoder.modality != modality:
        raise DataError(f"encoder {encoder.name!r} embeds {encoder.modality}, but side {side!r} of "
                        f"{source.spec} holds {modality}")
    return modality
