"""What a data source yields: per split, the items of each side and the pairs that link them.

A paired image–text set has sides ``image`` and ``text``; a text–text set has ``text_a`` and ``text_b``.
Items have stable string ids (Flickr8k: ``<file>`` for images, ``<file>#<k>`` for captions), and pairs
link ids across the two sides, so one image can have many captions. An unpaired pool is a source whose
``pairs`` is empty, used on one side only.

Image payloads are usually file paths; in-memory sets (Fashion-MNIST) hand over uint8 arrays instead,
which the image encoders accept too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import DataError
from ..utils.blobs import Blob

Payload = Union[str, Path, np.ndarray, Blob]  # a text, an image file's path, a uint8 image array, or image bytes
# inside another file (``utils.blobs``: a tar shard's member), read when encoded


@dataclass(frozen=True)
class Side:
    name: str  # "image", "text", "text_a", ...
    modality: str  # "image" | "text"


@dataclass(frozen=True)
class Item:
    id: str
    payload: Payload
    origin: str = ""  # "file:line" the item came from, quoted in error messages


@dataclass
class SplitData:
    """Everything one split holds. ``skipped`` lists ``(id, reason)`` for rows dropped by ``skip_bad``.

    ``labels`` names one class per *item* (zero-shot and linear-probe tasks); ``tags`` gives a multi-label
    target per *pair* over the vocabulary ``tag_names`` (a classifier of image + text, e.g. DynMM), since
    what a pair is labelled with may depend on both of its items."""

    split: str
    sides: tuple[Side, Side]
    items: dict[str, list[Item]]
    pairs: list[tuple[str, str]]  # (id on sides[0], id on sides[1])
    labels: dict[str, str] = field(default_factory=dict)  # item id -> class name, for labelled sets
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tag_names: tuple[str, ...] = ()  # the label vocabulary of a multi-label task, in order (() = none)
    tags: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # pair -> its labels

    def head(self, n: int) -> "SplitData":
        """The first ``n`` items of the first side, with everything paired to them: a quick-trial subset."""
        first = self.sides[0].name
        if n <= 0 or n >= len(self.items[first]):
            return self
        return self.subset(first, {item.id for item in self.items[first][:n]}, f"{self.split}-first{n}")

    def subset(self, side: str, keep: set[str], name: str) -> "SplitData":
        """The items of ``side`` whose ids are in ``keep``, with their pairs, partners and labels.

        A subset always gets its own split ``name``: the feature store keys features by split, so a subset
        under the full split's name would replace the full split's cached features.
        """
        position = [s.name for s in self.sides].index(side)
        other = self.sides[1 - position].name
        pairs = [p for p in self.pairs if p[position] in keep]
        partners = {p[1 - position] for p in pairs}
        items = {side: [it for it in self.items[side] if it.id in keep],
                 other: [it for it in self.items[other] if it.id in partners]}
        labels = {k: v for k, v in self.labels.items() if k in keep or k in partners}
        tags = {pair: self.tags[pair] for pair in pairs if pair in self.tags}
        return SplitData(name, self.sides, items, pairs, labels, list(self.skipped), self.tag_names, tags)

    def side_for(self, modality: str, preferred: str = "", where: str = "") -> str:
        """The data side holding ``modality``: the one named ``preferred`` (e.g. the model side's name) when
        it holds that modality, else the first that does — the one rule for data sides."""
        names = [s.name for s in self.sides if s.modality == modality]
        if not names:
            raise DataError(f"{where or 'split ' + repr(self.split)} has no {modality} side (sides: "
                            f"{', '.join(f'{s.name} ({s.modality})' for s in self.sides)})")
        return preferred if preferred in names else names[0]

    def side(self, name: str) -> Side:
        for side in self.sides:
            if side.name == name:
                return side
        raise KeyError(f"no side {name!r}; this source has {[s.name for s in self.sides]}")


class Source:
    """Base class of data sources. Subclasses set ``name``/``sides`` and implement the two methods."""

    name: str = ""
    sides: tuple[Side, Side]

    def __init__(self, *, skip_bad: bool = False) -> None:
        self.skip_bad = skip_bad

    @property
    def spec(self) -> str:
        """The registry spec that rebuilds this source (e.g. ``flickr8k:/data/f8k``)."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """Changes whenever the content changes; part of every feature-cache key."""
        raise NotImplementedError

    def splits(self) -> list[str]:
        raise NotImplementedError

    def load(self, split: str) -> SplitData:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        """Raise a DataError naming the available splits when ``split`` is not one of them."""
        available = self.splits()
        if split not in available:
            raise DataError(
                f"{self.spec}: unknown split {split!r}; available splits: {', '.join(available)}"
            )

    def expand_splits(self, requested: list[str]) -> list[str]:
        """``--split`` values → this source's splits, each checked; ``all`` (or nothing) = every split, unless
        the source has a split of that name (split-less sources call their one split ``all``)."""
        available = self.splits()
        names: list[str] = []
        for split in requested or ["all"]:
            chosen = available if split == "all" and "all" not in available else [split]
            for name in chosen:
                self.check_split(name)
                if name not in names:
                    names.append(name)
        return names

