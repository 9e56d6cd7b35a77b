"""Approximate index backends vs exact search, side by side: recall@10 against exact, and query speed.

    python -m bench.index     # needs the Flickr8k FuseMix model of bench.flickr8k (trained if missing)

Collection: all 40,000 Flickr8k captions (train + val + test) embedded by the bench's FuseMix model;
queries: the 1,000 test images. Then the same on 200,000 synthetic clustered 512-d unit vectors, where an
approximate index starts to pay. Recall@10 = share of exact top-10 the backend returns; speed-up = exact
seconds / backend seconds for the whole query batch, measured in the same run; build vs reopen = training
a faiss structure vs reading the one an index saved. Single-threaded (OMP_NUM_THREADS=1) for stable ratios.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.index import BackendConfig, Index
from latentfuse.index.backends import FaissBackend, build_backend
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir
from .serve_load import bench_model

SETTINGS = [BackendConfig("ivf", nprobe=n) for n in (1, 4, 16, 64)] + [
    BackendConfig("hnsw", ef_search=ef) for ef in (16, 64, 256)]


def compare(collection: np.ndarray, queries: np.ndarray, k: int = 10) -> list[dict]:
    exact = build_backend(collection, BackendConfig())
    started = time.perf_counter()
    _, truth = exact.search(queries, k)
    exact_s = time.perf_counter() - started
    rows = [{"backend": "exact", "build_s": 0.0, "reopen_s": 0.0, "query_s": exact_s, "recall@10": 1.0,
             "speedup": 1.0}]
    for config in SETTINGS:
        started = time.perf_counter()
        backend = build_backend(collection, config)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        _, found = backend.search(queries, k)
        query_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            backend.write(Path(tmp) / "saved.index")
            started = time.perf_counter()
            FaissBackend.read(Path(tmp) / "saved.index", config)
            reopen_s = time.perf_counter() - started
        recall = float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))
        label = f"ivf nprobe={config.nprobe}" if config.kind == "ivf" else f"hnsw ef={config.ef_search}"
        rows.append({"backend": label, "build_s": build_s, "reopen_s": reopen_s, "query_s": query_s,
                     "recall@10": recall, "speedup": exact_s / query_s})
    return rows


def flickr8k_vectors() -> tuple[np.ndarray, np.ndarray] | None:
    data = flickr8k_dir()
    if data is None:
        return None
    model_dir = bench_model(data)
    source = build_source(f"flickr8k:{data}")
    captions = Index.create(RESULTS / "index-bench" / "captions", model_dir, side="text")
    for split in ("train", "val", "test"):
        captions.add_source(source, split, StoreConfig(), progress=False)
    images = Index.create(RESULTS / "index-bench" / "images", model_dir)
    images.add_source(source, "test", StoreConfig(), progress=False)
    return np.asarray(captions.embeddings), np.asarray(images.embeddings)


def synthetic(n: int = 200_000, dim: int = 512, clusters: int = 1000, queries: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = centers[rng.integers(0, clusters, queries)] + 0.5 * rng.standard_normal((queries, dim)).astype(np.float32)
    return x, q / np.linalg.norm(q, axis=1, keepdims=True)


def table(title: str, rows: list[dict]) -> str:
    lines = [f"**{title}**", "", "| backend | recall@10 vs exact | query speed-up vs exact | build s | "
             "reopen saved s |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['recall@10']:.3f} | {r['speedup']:.1f}× | {r['build_s']:.1f} | "
              f"{r['reopen_s']:.2f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    out = []
    vectors = flickr8k_vectors()
    if vectors is not None:
        collection, queries = vectors
        out.append(table(f"Flickr8k: {len(collection):,} captions, {len(queries):,} image queries, "
                         f"{collection.shape[1]}-d", compare(collection, queries)))
        print(out[-1], "\n", flush=True)
    collection, queries = synthetic()
    out.append(table(f"synthetic: {len(collection):,} clustered unit vectors, {len(queries):,} queries, "
                     f"{collection.shape[1]}-d", compare(collection, queries)))
    print(out[-1], flush=True)
    atomic.write_text(RESULTS / "index.md", "\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()
