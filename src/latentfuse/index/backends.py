"""Nearest-neighbour backends over L2-normalised joint embeddings (inner product = cosine).

* ``exact`` (default): one matrix product and a partial sort in numpy — exact, no dependency, and fast up
  to a few hundred thousand items on a CPU.
* ``ivf``: faiss ``IndexIVFFlat`` (inner product), ``nlist`` ≈ 4·√n coarse cells (at least 39 training
  points per cell, as faiss asks), ``nprobe`` cells searched per query. Approximate.
* ``hnsw``: faiss ``IndexHNSWFlat`` (inner product), ``m`` links per node, ``ef_search`` candidates per
  query. Approximate; no training step.

``bench/index.py`` reports each approximate backend's recall@10 against ``exact`` and its query-time
ratio, side by side. A faiss structure is saved with its index generation (training IVF on 200k vectors
takes minutes) and grown with ``add`` when items are appended: new items are assigned to the cells
trained on the first batch, as faiss intends; rebuild the index when the collection's content shifts a lot.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np

from ..config import OneOf, Positive, check_fields
from ..choices import INDEX_KINDS
from ..errors import ConfigError, LatentfuseError


@dataclass(frozen=True)
class BackendConfig:
    kind: Annotated[str, OneOf(("exact", "ivf", "hnsw"))] = "exact"
    """exact | ivf | hnsw."""
    nprobe: Positive = 16
    """ivf: coarse cells searched per query (more = slower, closer to exact)."""
    m: Positive = 32
    """hnsw: links per node."""
    ef_search: Positive = 128
    """hnsw: candidate list size at query time (more = slower, closer to exact)."""

    def __post_init__(self) -> None:
        check_fields(self, "index backend")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KINDS = INDEX_KINDS


class Backend(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, k), best first; rows of -1 mean "no more items"."""


class ExactBackend:
    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.embeddings)
        k = min(k, n)
        scores = queries @ self.embeddings.T
        if k < n:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(n), (len(queries), 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)  # score desc, then row asc: ties are deterministic
        rows = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, rows, axis=1), rows


class FaissBackend:
    def __init__(self, index: Any, config: BackendConfig, keep_alive: Any = None) -> None:
        self.index, self.config = index, config
        self._keep_alive = keep_alive  # a quantizer built from Python is not owned by its IVF index
        self.tune(config)

    @classmethod
    def build(cls, embeddings: np.ndarray, config: BackendConfig) -> "FaissBackend":
        faiss = _faiss()
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        dim = x.shape[1]
        quantizer = None
        if config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = max(1, min(int(4 * math.sqrt(len(x))), len(x) // 39))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
        index.add(x)
        return cls(index, config, quantizer)

    @classmethod
    def read(cls, path: Path, config: BackendConfig) -> "FaissBackend":
        return cls(_faiss().read_index(str(path)), config)

    def write(self, path: Path) -> None:
        _faiss().write_index(self.index, str(path))

    def tune(self, config: BackendConfig) -> None:
        """Query-time knobs (nprobe, ef_search) need no rebuild."""
        self.config = config
        if config.kind == "hnsw":
            self.index.hnsw.efSearch = config.ef_search
        else:
            self.index.nprobe = min(config.nprobe, self.index.nlist)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def add(self, embeddings: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows


def build_backend(embeddings: np.ndarray, config: BackendConfig) -> Backend:
    if config.kind not in KINDS:
        raise ConfigError(f"unknown index backend {config.kind!r}; choose one of {', '.join(KINDS)}")
    if config.kind == "exact" or len(embeddings) == 0:
        return ExactBackend(embeddings)
    return FaissBackend.build(embeddings, config)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise LatentfuseError("the ivf / hnsw index backends need faiss: pip install 'latentfuse[index]' "
                              "(or use the default exact backend)") from None
    return faiss
