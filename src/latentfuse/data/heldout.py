"""Held-out splits for data that has none: a table without a ``split`` column, a folder of photos.

``HeldOut(source, shares, seed)`` cuts the source's one split into ``train`` / ``val`` / ``test`` by a digest of
each item of the first side (an image, with all its captions): deterministic, so every run and every
machine gets the same cut, and no image's captions straddle train and test. The shares and the seed are
the run's config fields (``data.split_shares``, ``data.split_seed``), saved in its ``run.yaml``.

The subsets are named after the cut (``train-heldout<digest>``); their features are filed by content like any
split's, so an item is encoded once whichever cut, split or source lists it.
"""
from __future__ import annotations

import hashlib

from ..errors import ConfigError, DataError
from .base import Source, SplitData

SPLITS = ("train", "val", "test")
FILL_FROM = 10  # items: below this, a cut that leaves a split empty is an error (too few to hold anything out)


class HeldOut(Source):
    """``source``'s only split, cut by item into train / val / test (``shares`` in percent, summing to 100)."""

    def __init__(self, source: Source, shares: list[float], seed: int = 0) -> None:
        super().__init__(skip_bad=source.skip_bad)
        if len(shares) != len(SPLITS) or any(s <= 0 for s in shares) or abs(sum(shares) - 100) > 1e-6:
            raise ConfigError(f"data.split_shares {shares}: expected three percentages above 0 (train, val, test) "
                              "that sum to 100")
        (self.whole,) = source.splits()
        self.source, self.shares, self.seed = source, [float(s) for s in shares], seed
        self.name, self.sides = source.name, source.sides
        self.tag = hashlib.sha256(f"{self.shares}|{seed}".encode()).hexdigest()[:8]

    @property
    def spec(self) -> str:
        return self.source.spec

    @property
    def fingerprint(self) -> str:
        return self.source.fingerprint

    def splits(self) -> list[str]:
        return [*SPLITS, self.whole]

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        whole = self.source.load(self.whole)
        if split == self.whole:
            return whole
        first = whole.sides[0].name
        cut = self.cut([item.id for item in whole.items[first]])
        keep = {item_id for item_id, name in cut.items() if name == split}
        if not keep:
            raise DataError(f"{self.spec}: cutting its {len(whole.items[first])} {first}s "
                            f"{'/'.join(f'{s:g}' for s in self.shares)} % left no {split} {first}; add "
                            f"{first}s, give the data a split column, or change data.split_shares")
        return whole.subset(first, keep, f"{split}-heldout{self.tag}")

    def cut(self, ids: list[str]) -> dict[str, str]:
        """Each item's split (``split_of``); with at least ``FILL_FROM`` items, a split the digests left empty gets
        the one item whose bucket lies nearest its range, taken from the largest split — 36 photos cut 80/10/10
        have a 2 % chance of no test photo otherwise, decided by where the files happen to live."""
        cut = {item_id: self.split_of(item_id) for item_id in ids}
        if len(cut) < FILL_FROM:
            return cut
        for index, name in enumerate(SPLITS):
            if name in cut.values():
                continue
            low = sum(self.shares[:index])
            high = low + self.shares[index]
            counts = {n: list(cut.values()).count(n) for n in SPLITS}
            donor = max(SPLITS, key=lambda n: counts[n])
            nearest = min((i for i, n in cut.items() if n == donor),
                          key=lambda i: (min(abs(self.bucket(i) - low), abs(self.bucket(i) - high)), i))
            cut[nearest] = name
        return cut

    def bucket(self, item_id: str) -> float:
        """The item's digest as a position in [0, 100), in steps of 0.01."""
        return int(hashlib.sha256(f"{self.seed}|{item_id}".encode()).hexdigest()[:8], 16) % 10_000 / 100

    def split_of(self, item_id: str) -> str:
        """The split an item falls in: its digest's position in 10,000 buckets, cut at the shares."""
        bucket = self.bucket(item_id)
        edge = 0.0
        for name, share in zip(SPLITS, self.shares):
            edge += share
            if bucket < edge:
                return name
        return SPLITS[-1]


def needs_holdout(source: Source, wanted: list[str]) -> bool:
    """A source with one split of its own, asked for splits it does not have (train / val / test)."""
    names = source.splits()
    return len(names) == 1 and any(split and split not in names and split in SPLITS for split in wanted)


def cut_like_training(source: Source, split: str | None, trained_on: str, cut: dict | None) -> Source:
    """The source an evaluation of a model should read: when the model was trained on a cut of this very table
    (its ``trained_on`` names it and it recorded the cut) and the table has no splits of its own, the same cut —
    so ``eval`` scores the held-out images by default, as the training report did, never the training rows."""
    from ..specs import public

    if not cut or public(source.spec) != trained_on or len(source.splits()) != 1:
        return source
    if split and split not in SPLITS:
        return source  # the whole table, asked for by its own split name
    return HeldOut(source, list(cut["shares"]), int(cut["seed"]))
