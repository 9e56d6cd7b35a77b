"""The feature store's key index (``store.keyindex.KeyIndex``) beside the Python dict it replaced, per shelf of N
content keys (16 characters, shards of 65,536 rows): the memory it holds and its peak while being built
(tracemalloc), seconds to build it from the shards' key arrays, and milliseconds to look up 100k keys. Each (kind, N) is measured in a fresh process.

    python -m bench.store_keys        # N = 1M, 3M, 10M (~3 GB of RAM for the dict at 10M; a few minutes)

Results: ``docs/benchmarks/store-keys.json`` (rendered in docs/results.md).
"""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from .common import publish

SIZES = (1_000_000, 3_000_000, 10_000_000)
SHARD, LOOKUPS = 65_536, 100_000


def shard_keys(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**60, n)
    return [np.array([f"f{v:015x}" for v in values[s:s + SHARD]], dtype="<U16") for s in range(0, n, SHARD)]


def build(kind: str, shards: list[np.ndarray]) -> Any:
    if kind == "dict":  # what Shelf.refresh built before
        where: dict[str, tuple[int, int]] = {}
        for position, keys in enumerate(shards):
            for row, key in enumerate(keys.tolist()):
                where.setdefault(key, (position, row))
        return where
    from latentfuse.store.keyindex import KeyIndex

    index = KeyIndex()
    for position, keys in enumerate(shards):
        index.add(keys, position)
    len(index)  # every shard sorted in, as after a refresh
    return index


def measure(kind: str, n: int) -> dict[str, Any]:
    """Seconds untraced; then the same build again under tracemalloc (NumPy reports its buffers to it): the bytes
    the structure holds once built, and the peak while building it."""
    shards = shard_keys(n)
    wanted = [str(k) for k in np.concatenate(shards[:2])[:LOOKUPS // 2]] + [f"m{i:015x}" for i in range(LOOKUPS // 2)]
    started = time.perf_counter()
    built = build(kind, shards)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    found = sum(1 for key in wanted if key in built) if kind == "dict" else \
        int(np.count_nonzero(built.locate(wanted)[0] >= 0))
    lookup_ms = 1000 * (time.perf_counter() - started)
    assert found == LOOKUPS // 2, found
    del built
    gc.collect()
    tracemalloc.start()
    built = build(kind, shards)
    held, peak = tracemalloc.get_traced_memory()  # while ``built`` is alive
    tracemalloc.stop()
    del built
    return {"kind": kind, "n": n, "held_mb": held / 2**20, "peak_mb": peak / 2**20, "build_s": build_s,
            "lookup_100k_ms": lookup_ms}


def main() -> None:
    if "--one" in sys.argv:
        kind, n = sys.argv[sys.argv.index("--one") + 1:][:2]
        print(json.dumps(measure(kind, int(n))))
        return
    rows = []
    for n in SIZES:
        for kind in ("dict", "KeyIndex"):
            done = subprocess.run([sys.executable, "-m", "bench.store_keys", "--one", kind, str(n)], check=True,
                                  capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    columns = ["N keys", "index", "memory held MB", "bytes / key", "peak while building MB", "build s",
               "100k lookups ms"]
    table = [[f"{r['n']:,}", r["kind"], f"{r['held_mb']:,.0f}", f"{r['held_mb'] * 2**20 / r['n']:.0f}",
              f"{r['peak_mb']:,.0f}",
              f"{r['build_s']:.1f}", f"{r['lookup_100k_ms']:.0f}"] for r in rows]
    path = publish("store-keys", "python -m bench.store_keys", columns, table, rows=rows)
    print(path, *(" | ".join(r) for r in table), sep="\n")


if __name__ == "__main__":
    main()
