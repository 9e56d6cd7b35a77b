"""The held-out cut: a split the digests leave empty is filled by its nearest item, once there are enough items —
never decided by where the files live (a 36-photo quick start had a 2 % chance of no test photo)."""
from __future__ import annotations

from latentfuse.data.heldout import FILL_FROM, SPLITS, HeldOut


class OneSplit:
    """The least a source needs to be cut: one split of its own."""

    skip_bad, name, sides, spec, fingerprint = False, "fake", [], "fake:", "fake"

    def splits(self) -> list[str]:
        return ["all"]


def test_an_empty_split_gets_the_item_nearest_its_range_and_nothing_else_moves():
    ids = [f"photo-{i}.jpg" for i in range(12)]
    cuts = [HeldOut(OneSplit(), [80, 10, 10], seed) for seed in range(200)]
    starved = next(c for c in cuts if len({c.split_of(i) for i in ids}) < len(SPLITS))  # the digests left a gap
    plain = {i: starved.split_of(i) for i in ids}
    cut = starved.cut(ids)
    assert set(cut.values()) == set(SPLITS)
    moved = {i for i in ids if cut[i] != plain[i]}
    assert len(moved) == len(set(SPLITS) - set(plain.values()))  # one item per empty split
    assert starved.cut(list(reversed(ids))) == cut  # deterministic, whatever the order
    for name in set(SPLITS) - set(plain.values()):
        (item,) = [i for i in moved if cut[i] == name]
        low = sum(starved.shares[:SPLITS.index(name)])
        high = low + starved.shares[SPLITS.index(name)]
        distance = min(abs(starved.bucket(item) - low), abs(starved.bucket(item) - high))
        donors = [i for i in ids if plain[i] == plain[item]]
        assert all(distance <= min(abs(starved.bucket(i) - low), abs(starved.bucket(i) - high)) for i in donors)


def test_too_few_items_are_not_forced_into_every_split():
    ids = [f"photo-{i}.jpg" for i in range(FILL_FROM - 1)]
    starved = next(c for c in (HeldOut(OneSplit(), [80, 10, 10], s) for s in range(200))
                   if len({c.split_of(i) for i in ids}) < len(SPLITS))
    assert starved.cut(ids) == {i: starved.split_of(i) for i in ids}
