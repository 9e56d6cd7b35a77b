"""The one way to get frozen features of a split: ``get_features`` (cache lookup, reuse of a parent split's
rows, extraction of what is missing — shard by shard, cached and resumable).

Every consumer — training, every evaluator, the index — calls ``get_features``; none reads the store's
layout or manifest itself. Per-layer token features will plug in here.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from tqdm.auto import tqdm

from ..config import StoreConfig
from ..data import Item, Source, SplitData
from ..encoders import Encoder
from ..encoders.base import BadItemError
from ..errors import DataError
from .feature_store import Features, FeatureStore, read_manifest

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
                 parent: SplitData | None = None, skip_bad: bool = False, progress: bool = True) -> Features:
    """Features of one side of ``data`` (a split, or a named subset of one), from the cache when possible.

    ``parent``: the full split ``data`` was taken from (``head``, ``sample_split``, ``subset``); when the
    parent's features are complete in the store, the subset's rows are read from them instead of encoding.
    Otherwise whatever is missing is extracted; shards finished by an earlier (even killed) run are reused.
    """
    check_modality(source, data, side, encoder)
    if encoder.parts:
        return _joined(source, data, side, encoder, store, parent=parent, skip_bad=skip_bad, progress=progress)
    feature_store = FeatureStore(store.root)
    features = None
    if parent is not None and parent is not data:
        features = _rows_of_parent(feature_store, source, parent, data, side, encoder)
    if features is None:
        features = _extract(source, data, side, encoder, feature_store, store, skip_bad=skip_bad,
                            progress=progress)
    if not skip_bad:
        refuse_skipped(features, data, side)
    return features


def _joined(source: Source, data: SplitData, side: str, encoder: Encoder, store: StoreConfig, *,
            parent: SplitData | None, skip_bad: bool, progress: bool) -> Features:
    """An ensemble's features: each member's from the store (cached on its own), joined on the items every
    member has (a ``--skip-bad`` item dropped by one is dropped from the ensemble)."""
    members = [get_features(source, data, side, part, store, parent=parent, skip_bad=skip_bad, progress=progress)
               for part in encoder.parts]
    common = set.intersection(*(set(m.ids) for m in members))
    ids = [item_id for item_id in members[0].ids if item_id in common]
    arrays = []
    for member in members:
        if member.ids == ids:
            arrays.append(member.array)
        else:
            index = member.index()
            arrays.append(member.array[np.array([index[i] for i in ids], dtype=np.int64)])
    skipped = {entry["id"]: entry for m in members for entry in m.manifest.get("skipped", [])}
    manifest = {"complete": True, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint,
                "members": [m.manifest.get("encoder") for m in members], "skipped": list(skipped.values())}
    return Features(ids, encoder.join(arrays).astype(np.float16), manifest)


def check_modality(source: Source, data: SplitData, side: str, encoder: Encoder) -> str:
    """The side's modality, or a DataError when the encoder embeds another one."""
    modality = data.side(side).modality
    if encoder.modality != modality:
        raise DataError(f"encoder {encoder.name!r} embeds {encoder.modality}, but side {side!r} of "
                        f"{source.spec} holds {modality}")
    return modality


def refuse_skipped(features: Any, data: SplitData, side: str) -> None:
    """A strict run over cached features must still fail on the items an earlier --skip-bad run dropped:
    the cache remembers the decision, but only a run that asked for it may inherit it."""
    wanted = {item.id for item in data.items[side]}
    for entry in features.manifest.get("skipped", []):
        if entry["id"] in wanted:
            raise DataError(f"{entry['id']}: {entry['reason']} (recorded when an earlier --skip-bad run skipped it; "
                            "pass --skip-bad to skip such items)")


def _rows_of_parent(store: FeatureStore, source: Source, parent: SplitData, data: SplitData, side: str,
                    encoder: Encoder) -> Features | None:
    """``data``'s rows from the parent split's complete cached features, or None when they are not all there."""
    directory = store.directory(source.feature_namespace, source.fingerprint, parent.split, side, encoder.name,
                                encoder.cache_key)
    manifest = read_manifest(directory)
    if manifest is None or not manifest.get("complete"):
        return None
    full = FeatureStore.read(directory)
    index = full.index()
    skipped = {entry["id"] for entry in manifest.get("skipped", [])}
    wanted = [item.id for item in data.items[side] if item.id not in skipped]
    if any(item_id not in index for item_id in wanted):
        return None
    rows = np.array([index[item_id] for item_id in wanted], dtype=np.int64)
    return Features(wanted, np.asarray(full.array[rows] if len(rows) else full.array[:0]), manifest)


def _extract(source: Source, data: SplitData, side: str, encoder: Encoder, store: FeatureStore,
             config: StoreConfig, *, skip_bad: bool, progress: bool) -> Features:
    """Encode what the store lacks, shard by shard, with ``config.engine`` (this process, or Ray)."""
    batch_size, shard_size = config.batch_size, config.shard_size
    modality = data.side(side).modality
    items = data.items[side]
    directory = store.directory(source.feature_namespace, source.fingerprint, data.split, side, encoder.name,
                                encoder.cache_key)
    header = {"dataset": source.spec, "dataset_fingerprint": source.fingerprint, "split": data.split,
              "side": side, "modality": modality, "encoder": encoder.name,
              "encoder_fingerprint": encoder.fingerprint}
    writer = store.writer(directory, header, [item.id for item in items], shard_size)
    todo = [k for k in range(writer.n_shards) if k not in writer.done()]
    if todo and config.engine == "ray":
        from .ray_engine import extract_shards

        extract_shards(encoder, items, todo, writer, config, skip_bad, progress, f"{encoder.name} {data.split}/{side}")
    elif todo:
        remaining = sum(len(items[k * shard_size:(k + 1) * shard_size]) for k in todo)
        bar = tqdm(total=remaining, desc=f"{encoder.name} {data.split}/{side}", unit=modality,
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        with bar:
            for k in todo:
                shard_items = items[k * shard_size:(k + 1) * shard_size]
                ids, array, skipped = encode_items(encoder, shard_items, batch_size, skip_bad, bar.update)
                writer.commit(k, ids, array, skipped)
    if todo or not writer.manifest.get("complete"):
        writer.finish(data.skipped, encoder.dim)
    return FeatureStore.read(directory)
