"""Joint embeddings of a data split for evaluation, always through the feature store.

Evaluators never call an encoder on dataset items themselves: ``embed`` extracts (or reuses) the frozen
features of one side of a split with the model's encoder for a model side, then applies the model's head.
The cache key is (dataset, split, data side, encoder), so every model over the same frozen encoder — a
frozen baseline, FuseMix, each LightCRL op — shares one extraction.

Data sides and model sides are different things: STS data has sides ``text_a``/``text_b``; a FuseMix model
has ``image``/``text``; a frozen text encoder has just ``text``. ``pick_side`` / ``match_sides`` choose which
model side embeds which data side and say so when the choice is impossible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import StoreConfig
from ..data import Item, Source, SplitData
from ..encoders import Encoder
from ..errors import ConfigError, DataError
from ..model import JointModel
from ..store import FeatureStore, extract_split
from ..store.feature_store import read_manifest


@dataclass
class Embedded:
    """Joint embeddings of the items of one data side: ``x[i]`` embeds ``ids[i]`` (skipped items absent)."""

    ids: list[str]
    x: np.ndarray  # float32 (n, dim)

    def rows(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}


def pick_side(model: JointModel, modality: str, requested: str = "", purpose: str = "") -> str:
    """The model side to use for ``modality``: ``requested`` if given, else the first side of that modality."""
    sides = list(model.sides.values())
    if requested:
        if requested not in model.sides:
            raise ConfigError(f"{purpose}: the model has no side {requested!r}; its sides are "
                              f"{[s.name for s in sides]}")
        if model.sides[requested].modality != modality:
            raise ConfigError(f"{purpose}: side {requested!r} holds {model.sides[requested].modality}, "
                              f"but {modality} is needed")
        return requested
    matches = [s.name for s in sides if s.modality == modality]
    if not matches:
        raise ConfigError(f"{purpose}: needs a side of modality {modality!r}, but the model's sides are "
                          f"{[f'{s.name} ({s.modality})' for s in sides]}")
    return matches[0]


def match_sides(model: JointModel, data: SplitData, purpose: str) -> dict[str, str]:
    """Data side → model side: by name when the model has the data's side names, else by modality."""
    names = [side.name for side in data.sides]
    if all(name in model.sides for name in names):
        return {name: name for name in names}
    return {side.name: pick_side(model, side.modality, purpose=purpose) for side in data.sides}


def embed(model: JointModel, model_side: str, source: Source, data: SplitData, data_side: str,
          store: StoreConfig, *, skip_bad: bool = False, progress: bool = True,
          parent: SplitData | None = None) -> Embedded:
    """Joint embeddings of ``data_side`` of ``data`` through ``model_side`` (frozen features cached).

    ``parent``: the full split ``data`` was sampled from; when its features are already complete in the
    store (e.g. extracted for training), the sample's rows are taken from them instead of re-encoding.
    """
    encoder = model.encoder(model_side)
    features = _from_parent(source, data, data_side, encoder, store, parent) if parent is not None else None
    if features is None:
        got = extract_split(source, data, data_side, encoder, FeatureStore(store.root),
                            batch_size=store.batch_size, shard_size=store.shard_size, skip_bad=skip_bad,
                            progress=progress)
        features = (got.ids, got.array)
    ids, array = features
    return Embedded(list(ids), model.encode_features(model_side, array))


def _from_parent(source: Source, data: SplitData, data_side: str, encoder: Encoder, store: StoreConfig,
                 parent: SplitData) -> tuple[list[str], np.ndarray] | None:
    """The sample's rows from the parent split's cached features, or None when they are not all there."""
    directory = FeatureStore(store.root).directory(source.name, source.fingerprint, parent.split, data_side,
                                                   encoder.name, encoder.fingerprint)
    manifest = read_manifest(directory)
    if manifest is None or not manifest.get("complete"):
        return None
    full = FeatureStore.read(directory)
    index = full.index()
    skipped = {entry["id"] for entry in manifest.get("skipped", [])}
    wanted = [item.id for item in data.items[data_side] if item.id not in skipped]
    if any(item_id not in index for item_id in wanted):
        return None
    rows = np.array([index[item_id] for item_id in wanted], dtype=np.int64)
    return wanted, np.asarray(full.array[rows] if len(rows) else full.array[:0], dtype=np.float32)


def sample_split(data: SplitData, side: str, n: int, seed: int) -> SplitData:
    """A seeded random ``n`` items of ``side`` (with their pairs and labels), or ``data`` if it is smaller.

    Random rather than the first ``n``: class-sorted sources (imagefolder) would otherwise lose classes.
    The split is renamed ``<split>-sample<n>-seed<seed>`` so its cached features never overwrite the
    full split's (the store keys features by split name).
    """
    items = data.items[side]
    if n <= 0 or n >= len(items):
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:n])
    kept: list[Item] = [items[i] for i in keep]
    keep_ids = {item.id for item in kept}
    position = [s.name for s in data.sides].index(side)
    pairs = [p for p in data.pairs if p[position] in keep_ids]
    other = data.sides[1 - position].name
    other_ids = {p[1 - position] for p in pairs}
    subset = {side: kept, other: [it for it in data.items[other] if it.id in other_ids]}
    labels = {k: v for k, v in data.labels.items() if k in keep_ids or k in other_ids}
    return SplitData(f"{data.split}-sample{n}-seed{seed}", data.sides, subset, pairs, labels, list(data.skipped))


def labels_of(data: SplitData, ids: list[str], task: str, source: Source) -> list[str]:
    """Class names of ``ids``; an unlabelled item is an error naming the source and the item."""
    missing = [item_id for item_id in ids if item_id not in data.labels]
    if missing:
        raise DataError(f"{task}: {source.spec} split {data.split!r} has {len(missing)} item(s) without a "
                        f"label (e.g. {missing[0]!r}); {task} needs a labelled source such as fashion-mnist, "
                        "imagefolder:DIR, or pairs: with a 'label' column")
    return [data.labels[item_id] for item_id in ids]


def same_width(task: str, **embeddings: np.ndarray) -> None:
    """Cross-side scores need one joint space; a frozen model over encoders of different widths has none."""
    widths = {name: x.shape[1] for name, x in embeddings.items()}
    if len(set(widths.values())) > 1:
        raise ConfigError(f"{task} compares embeddings across sides, but their widths differ "
                          f"({', '.join(f'{k} {v}' for k, v in widths.items())}): a frozen model over two "
                          "different encoders has no joint space; evaluate a trained model instead")
