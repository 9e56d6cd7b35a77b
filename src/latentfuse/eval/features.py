"""Joint embeddings of a data split for evaluation, always through the feature store.

Evaluators never call an encoder on dataset items themselves: ``embed`` extracts (or reuses) the frozen
features of one side of a split with the model's encoder for a model side, then applies the model's head.
The cache key is (dataset, split, data side, encoder), so every model over the same frozen encoder — a
frozen baseline, FuseMix, each LightCRL op — shares one extraction.

Data sides and model sides are different things: STS data has sides ``text_a``/``text_b``; a FuseMix model
has ``image``/``text``; a frozen text encoder has just ``text``. ``JointModel.side_for`` and
``SplitData.side_for`` are the one rule for each; ``match_sides`` pairs them up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import StoreConfig
from ..data import Source, SplitData
from ..errors import ConfigError, DataError
from ..model import JointModel
from ..encoders import Encoder
from ..store import PairedFeatures, TapInputs, get_features, get_tokens, paired_features


@dataclass
class Embedded:
    """Joint embeddings of the items of one data side: ``x[i]`` embeds ``ids[i]`` (skipped items absent)."""

    ids: list[str]
    x: np.ndarray  # float32 (n, dim)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) of items --skip-bad dropped

    def rows(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}


def match_sides(model: JointModel, data: SplitData, purpose: str) -> dict[str, str]:
    """Data side → model side: by name when the model has the data's side names, else by modality."""
    names = [side.name for side in data.sides]
    if all(name in model.sides for name in names):
        return {name: name for name in names}
    return {side.name: model.side_for(side.modality, purpose=purpose) for side in data.sides}


def paired_inputs(model: JointModel, source: Source, data: SplitData, sides: dict[str, str], store: StoreConfig, *,
                  encoders: dict[str, Encoder] | None = None, skip_bad: bool = False,
                  progress: bool = True) -> PairedFeatures:
    """Both data sides' frozen inputs for the model (pooled, or the taps its side reads), joined by pairs,
    through the store; ``encoders`` (data side → encoder) replaces the model's own, e.g. a corrupted one."""
    encoders = encoders or {data_side: model.encoder(model_side) for data_side, model_side in sides.items()}
    taps = {data_side: model.method.side_taps(model_side) for data_side, model_side in sides.items()}
    return paired_features(source, data, encoders, store, skip_bad=skip_bad, progress=progress, taps=taps)


def embed(model: JointModel, model_side: str, source: Source, data: SplitData, data_side: str,
          store: StoreConfig, *, skip_bad: bool = False, progress: bool = True) -> Embedded:
    """Joint embeddings of ``data_side`` of ``data`` through ``model_side`` (frozen features via the store)."""
    taps = model.method.side_taps(model_side)
    if taps:  # a token side: its taps through the store, the same cache rules as pooled features
        tokens = TapInputs(get_tokens(source, data, data_side, model.encoder(model_side), taps, store,
                                      skip_bad=skip_bad, progress=progress))
        ids, inputs, manifest = tokens.ids, tokens, next(iter(tokens.taps.values())).manifest
    else:
        got = get_features(source, data, data_side, model.encoder(model_side), store,
                           skip_bad=skip_bad, progress=progress)
        ids, inputs, manifest = got.ids, got.array, got.manifest
    wanted = {item.id for item in data.items[data_side]}
    skipped = [(s["id"], s["reason"]) for s in manifest.get("skipped", []) if s["id"] in wanted]
    skipped += list(data.skipped)  # rows the source itself dropped (a bad table row)
    return Embedded(list(ids), model.encode_features(model_side, inputs), skipped)


def sample_split(data: SplitData, side: str, n: int, seed: int) -> SplitData:
    """A seeded random ``n`` items of ``side`` (with their pairs and labels), or ``data`` if it is smaller.

    Random rather than the first ``n``: class-sorted sources (imagefolder) would otherwise lose classes.
    """
    items = data.items[side]
    if n <= 0 or n >= len(items):
        return data
    keep = {items[i].id for i in np.random.default_rng(seed).permutation(len(items))[:n]}
    return data.subset(side, keep, f"{data.split}-sample{n}-seed{seed}")


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
