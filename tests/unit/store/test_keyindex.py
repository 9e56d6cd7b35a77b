"""The store's key index against the plain dict it replaced (key → first (shard, row) holding it)."""
from __future__ import annotations

import numpy as np

from latentfuse.store.keyindex import MAX_RUNS, KeyIndex


def test_lookups_equal_a_dict_of_first_occurrences_across_merges():
    rng = np.random.default_rng(0)
    index, reference = KeyIndex(), {}
    for shard in range(3 * MAX_RUNS):  # past MAX_RUNS: runs are merged, and must keep the first holder
        keys = [f"f{k:015x}" for k in rng.integers(0, 400, 50)]  # repeats within and across shards
        index.add(keys, shard)
        index.locate(keys[:1])  # a lookup after each shard: one run each, merged past MAX_RUNS
        for row, key in enumerate(keys):
            reference.setdefault(key, (shard, row))
    wanted = [f"f{k:015x}" for k in range(450)]  # 50 of them never stored
    shard, row = index.locate(wanted)
    assert [(int(s), int(r)) if s >= 0 else None for s, r in zip(shard, row)] == [reference.get(k) for k in wanted]
    assert len(index) == len(reference) and index.count_in(set(wanted)) == len(reference)


def test_keys_of_other_widths_and_non_ascii_keys():
    index = KeyIndex()
    index.add(["short", "a-much-longer-key-than-that"], 0)
    index.add(["clé", "short"], 1)
    shard, row = index.locate(["short", "clé", "a-much-longer-key-than-that", "absent", "shor"])
    assert shard.tolist() == [0, 1, 0, -1, -1] and row[:3].tolist() == [0, 0, 1]
    assert len(KeyIndex()) == 0 and KeyIndex().locate([])[0].tolist() == []
