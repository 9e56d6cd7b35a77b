"""How an index finds its nearest rows (inner product of L2-normalised joint embeddings = cosine).

* ``exact`` (default): every row's embedding in memory, one matrix product and a partial sort in numpy — exact,
  and fast up to about a million items on a CPU (4 bytes × dim per item of RAM).
* ``ivf``: LanceDB's IVF_FLAT — √n coarse cells, at most ``MAX_CELL_VALUES`` / dim (``cells`` sets another
  number; at least ``MIN_ROWS_PER_PARTITION`` rows each), ``nprobe`` searched per query, exact distances inside
  them. Approximate; nothing but the cells in memory.
* ``ivf-pq``: LanceDB's IVF_PQ — the cells hold product-quantised vectors (dim/8 bytes a row), and the best
  ``refine`` × k are re-ranked on their stored vectors. What reaches tens of millions of items in a few GB.
* ``ivf-rq``: LanceDB's IVF_RQ (RaBitQ) — the cells hold ``DEFAULT_RQ_BITS`` (4) bits per dimension (dim/2 bytes a
  row; ``rq_bits`` sets another number) whose distance estimates rank close to exact, and the best ``refine`` × k
  (10 by default) are re-ranked on their stored vectors. ``bench/index_scale.py`` measures it beside ``ivf-pq``.
  Why 4 bits: at 10M items one bit a dimension kept recall@10 0.918 at refine 30 and needed refine 100 for 0.992,
  and re-ranking 1,000 stored vectors a query read them from disk where the page cache could not hold the rows:
  text-query p99 59.1 ms (``git show 1360b5a:docs/benchmarks/index-scale.json``). Four bits keep 1.000 at nprobe
  16 / refine 10, text-query p99 31.7 ms, for four times the structure (256 bytes a row at 512-d, an eighth of a
  float32 row) and 2.3 times its training (``python -m bench.index_scale``: 1,193 s against 514 s).
* ``hnsw``: LanceDB's IVF_HNSW_SQ — a graph of ``m`` links per node over scalar-quantised vectors,
  ``ef_search`` candidates per query.

The ANN structures are trained when the index is saved with enough rows (below that, LanceDB scans the rows,
which is exact); rows added later are searched by a scan until ``save`` folds them into the structure, which
happens once they are more than ``REINDEX_FRACTION`` of it (no retraining: new rows join the trained cells;
``--rebuild`` retrains). ``bench/index.py`` and ``bench/scale_curves.py`` measure each kind's recall@10 against
``exact`` and its query time.

Every structure is trained and searched in Euclidean distance (``METRIC``): on unit vectors it orders rows as the
inner product does, and its k-means cells follow the data. Trained on inner product, LanceDB's k-means made cells
that split what lies together once there were thousands of them: ``python -m bench.index_scale`` (1,000 clusters
of 512-d unit vectors) measured, before → after, ivf-rq at 10M items (3,162 cells) best recall@10 0.871 → 0.987,
and ivf-pq at 3M (1,732 cells) 0.884 → 0.996 at nprobe 32 / refine 100 (the earlier result file: ``git show
6967cb8:docs/benchmarks/index-scale.json``). The found rows are scored on their stored vectors either way.

Rows are assigned to their nearest cell exactly. Past a million centroid values (cells × dim) Lance would assign
them through an approximate HNSW over the centroids; at 10M items and 3,162 cells that left 1,714 cells empty (the
build's log) and half the rows in a few giant cells near every query (LanceDB's ``analyze_plan``: 5.4M coded rows
compared at nprobe 64), and the best recall@10 was 0.987, only at refine 400, in 152 ms p99 (``git show
7ee76c7:docs/benchmarks/index-scale.json``). ``table.LANCE_ENVIRONMENT`` turns that path off. Exact assignment
costs N × cells × dim, so the default stops at ``MAX_CELL_VALUES`` / dim cells (1,953 at 512-d, from 3.8M items
on) and training stays linear in N: ``python -m bench.index_scale`` measured, at 10M with one bit a dimension,
recall 0.992 from refine 100 (p99 48.8 ms at nprobe 64) and a build-time slope of 1.05 from 100k (``git show
1360b5a:docs/benchmarks/index-scale.json``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Protocol

import numpy as np

from ..config import NonNegative, OneOf, Positive, Range, check_fields
from ..choices import INDEX_KINDS
from ..errors import ConfigError
from .table import DTYPES, lancedb_module


@dataclass(frozen=True)
class BackendConfig:
    kind: Annotated[str, OneOf(INDEX_KINDS)] = "exact"
    """exact | ivf | ivf-pq | ivf-rq | hnsw."""
    nprobe: Positive = 32
    """ivf, ivf-pq, ivf-rq, hnsw: coarse cells searched per query (more = slower, closer to exact)."""
    m: Positive = 20
    """hnsw: links per node."""
    ef_search: Positive = 128
    """hnsw: candidate list size at query time (more = slower, closer to exact)."""
    refine: NonNegative = 0
    """ivf-pq, ivf-rq: the best refine × k quantised candidates are re-ranked on their stored vectors (each read from
    disk where the page cache does not hold it); 0 = by the kind (``DEFAULT_REFINE``: 10 for ivf-rq's 4-bit codes,
    100 for ivf-pq, whose codes rank further from exact, and for ivf-rq of fewer bits). ``bench/index_scale.py``
    sweeps nprobe / refine per kind and N (docs/benchmarks/index-scale.json)."""
    rq_bits: Annotated[int, Range(0, 8)] = 0
    """ivf-rq: RaBitQ bits a dimension (more = closer ranking, a bigger structure); 0 = ``DEFAULT_RQ_BITS`` (4)."""
    cells: Annotated[int, Range(0, 10_000_000)] = 0
    """ivf, ivf-pq, ivf-rq: coarse cells the structure is trained with; 0 = √N, at most ``MAX_CELL_VALUES`` / dim
    (1,953 at 512-d). Each keeps at least ``MIN_ROWS_PER_PARTITION`` rows. More cells: fewer rows scanned a query
    at the same nprobe, longer training (every row is assigned to its nearest cell: N × cells × dim)."""
    train_iterations: Positive = 20
    """ivf, ivf-pq, ivf-rq, hnsw: k-means iterations when the structure is trained (LanceDB's default: 50)."""
    train_sample: Positive = 64
    """ivf, ivf-pq, ivf-rq, hnsw: training points per cell (LanceDB's default: 256); ``bench/index_scale.py`` measures
    LanceDB's defaults beside these at 100k items: build time and recall@10."""
    dtype: Annotated[str, OneOf(DTYPES)] = "float32"
    """How the embeddings are stored: float32, or float16 (half the disk and I/O; rankings move by ~1e-3)."""

    def __post_init__(self) -> None:
        check_fields(self, "index backend")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KINDS = INDEX_KINDS
MIN_ROWS_PER_PARTITION = 256  # k-means needs this many training points per cell to place it
MAX_CELL_VALUES = 1_000_000  # cells × dim the default number of cells stops at (the module docstring says why)
METRIC = "l2"  # how the ANN structures are trained and searched (the module docstring says why)
MIN_ANN_ROWS = 4096  # below this an ANN structure saves nothing over LanceDB's exact scan
REINDEX_FRACTION = 0.1
EXACT_ROWS_ADVISED = 1_000_000  # past this, saving an exact index advises an ANN kind (its search holds every row)
DEFAULT_RQ_BITS = 4  # ivf-rq's bits a dimension (the module docstring says why)
# × k re-ranked when BackendConfig.refine is 0 (its docstring says why; ivf and hnsw as before there was a choice)
DEFAULT_REFINE = {"ivf-rq": 10, "ivf-pq": 100, "ivf": 100, "hnsw": 100}


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


def vector_index(config: BackendConfig, count: int, dim: int) -> Any:
    """LanceDB's configuration of the ANN structure ``config.kind`` names, for ``count`` rows of ``dim``."""
    lancedb_module()  # Lance's process settings first (exact cell assignment)
    from lancedb.index import HnswSq, IvfFlat, IvfPq, IvfRq

    if config.kind not in KINDS or config.kind == "exact":
        raise ConfigError(f"no ANN structure for index kind {config.kind!r}; choose one of {', '.join(KINDS[1:])}")
    partitions = cell_count(config, count, dim)
    training = {"max_iterations": config.train_iterations, "sample_rate": config.train_sample}
    if config.kind == "ivf":
        return IvfFlat(distance_type=METRIC, num_partitions=partitions, **training)
    if config.kind == "ivf-rq":
        return IvfRq(distance_type=METRIC, num_partitions=partitions, num_bits=config.rq_bits or DEFAULT_RQ_BITS,
                     **training)
    if config.kind == "hnsw":
        return HnswSq(distance_type=METRIC, num_partitions=max(1, count // 1_000_000), m=config.m, **training)
    return IvfPq(distance_type=METRIC, num_partitions=partitions, num_sub_vectors=pq_sub_vectors(dim), **training)


def cell_count(config: BackendConfig, count: int, dim: int) -> int:
    """The coarse cells of a structure over ``count`` rows: ``config.cells``, else √N up to ``MAX_CELL_VALUES`` / dim
    (1,953 at 512-d, reached at 3.8M rows); at least ``MIN_ROWS_PER_PARTITION`` rows each."""
    default = min(int(math.sqrt(count)), MAX_CELL_VALUES // dim)
    return max(1, min(config.cells or default, count // MIN_ROWS_PER_PARTITION))


def refine_of(config: BackendConfig) -> int:
    """× k candidates re-ranked on their stored vectors: ``config.refine``, else the kind's ``DEFAULT_REFINE`` —
    ivf-pq's for ivf-rq codes of fewer bits than ``DEFAULT_RQ_BITS`` (one bit needed refine 100 at 10M items)."""
    if config.refine:
        return config.refine
    if config.kind == "ivf-rq" and 0 < config.rq_bits < DEFAULT_RQ_BITS:
        return DEFAULT_REFINE["ivf-pq"]
    return DEFAULT_REFINE.get(config.kind, 1)


def pq_sub_vectors(dim: int) -> int:
    """Product quantisation in sub-vectors of 8 values (one byte each): dim/8 bytes per row, the largest such
    divisor of ``dim`` (Lance needs one)."""
    for width in (8, 4, 16, 2, 32, 1):
        if dim % width == 0:
            return dim // width
    return 1
