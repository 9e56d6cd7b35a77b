"""The rows of an index on disk: one LanceDB table (``INDEX/items.lance``), versioned and appended by Lance.

Columns: ``row`` (int64, the item's number in this index: assigned once, never reused while it is the
newest, what hits and the server's ``/image/{row}`` name), ``id``, ``source``, ``split``, ``label``, ``payload``
(image path or text; null for in-memory images), ``vector`` (the joint embedding, float32 or float16) and one
``penalty_<side>`` float32 column per query side of the model's query bank: the item's QB-Norm hub penalty,
which depends on the item alone, so it is computed once when the row is added and committed with it.

Every change is one Lance commit: a new version that names the data files it adds (appends write only the new
rows; deletes write a deletion file). A reader holds one version, so it never sees half a change, and a
process killed mid-write leaves the last committed version as it was.
"""
from __future__ import annotations

import os
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import LatentfuseError

TABLE = "items"
RECORD_COLUMNS = ("row", "id", "source", "split", "label", "payload")
DTYPES = ("float32", "float16")


def penalty_column(side: str) -> str:
    return f"penalty_{side}"


def quote(value: str) -> str:
    """A string literal of Lance's SQL filter language."""
    return "'" + str(value).replace("'", "''") + "'"


FILTER_COLUMNS = ("source", "split", "label")  # what a structured filter (the server's) may name


def equals_filter(values: Mapping[str, Sequence[str]]) -> str | None:
    """The Lance filter keeping rows whose column holds one of the values listed for it (columns: AND), built
    here with every value quoted, so an HTTP client never sends SQL (an expression can exhaust the process)."""
    clauses = []
    for column, listed in values.items():
        if column not in FILTER_COLUMNS:
            raise LatentfuseError(f"filter: no column {column!r}; filter by {', '.join(FILTER_COLUMNS)}")
        if listed:
            clauses.append(f"{column} IN ({', '.join(quote(v) for v in listed)})")
    return " AND ".join(clauses) or None


LANCE_ENVIRONMENT = {
    # Past a million centroid values (cells × dim: 1,954 cells at 512-d), Lance assigns rows to cells through an
    # approximate HNSW over the centroids, which at 10M items left half the cells empty and half the rows in a few
    # giant cells that every query scanned (backends.py's docstring has the measurements). Exact assignment instead.
    "LANCE_USE_HNSW_SPEEDUP_INDEXING": "disabled",
    # Lance's Rust warnings (a line per empty k-means cell: thousands while a large structure trains) are about its
    # internals; its errors still reach the user, and latentfuse logs what it does itself.
    "LANCEDB_LOG": "error",
}


def lancedb_module() -> Any:
    """LanceDB, imported with ``LANCE_ENVIRONMENT`` set first where the user has not set it (Lance reads each once a
    process, so every import of LanceDB here goes through this function)."""
    for name, value in LANCE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import lancedb

    return lancedb


def schema(dim: int, dtype: str, sides: Sequence[str]) -> Any:
    import pyarrow as pa

    value = pa.float16() if dtype == "float16" else pa.float32()
    return pa.schema([pa.field("row", pa.int64(), nullable=False), pa.field("id", pa.string(), nullable=False),
                      pa.field("source", pa.string(), nullable=False), pa.field("split", pa.string()),
                      pa.field("label", pa.string()), pa.field("payload", pa.string()),
                      pa.field("vector", pa.list_(value, dim)),
                      *(pa.field(penalty_column(side), pa.float32()) for side in sides)])


def first_line(exc: BaseException) -> str:
    """Lance's messages can run to a Rust backtrace (RUST_BACKTRACE=1): the first line says what went wrong."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class TableReadError(LatentfuseError):
    """LanceDB could not read the table (a damaged or missing data file), or could not parse a filter."""


@contextmanager
def reading(uri: str, where: str | None = None) -> Iterator[None]:
    """Lance's errors as one line naming the table — or the filter, when one was given."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as exc:
        line = first_line(exc)
        if where:
            raise TableReadError(f"where {where!r}: not a filter over the index's columns "
                                 f"({', '.join(RECORD_COLUMNS)}), or the table is damaged: {line}") from None
        raise TableReadError(f"{uri}: cannot read the index's item table ({line}); rebuild the index with "
                             "--overwrite") from None


class ItemTable:
    """One index's Lance table, pinned to the version it was opened at (``refresh`` moves to the newest)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._metric: tuple[int, str] | None = None  # (version, the structure's distance)

    @classmethod
    def create(cls, directory: Path, dim: int, dtype: str, sides: Sequence[str]) -> "ItemTable":
        db = lancedb_module().connect(str(directory))
        mode = "overwrite" if ItemTable.exists(directory) else "create"  # overwrite: what a killed conversion left
        return cls(db.create_table(TABLE, schema=schema(dim, dtype, sides), mode=mode))

    @classmethod
    def open(cls, directory: Path) -> "ItemTable":
        try:
            return cls(lancedb_module().connect(str(directory)).open_table(TABLE))
        except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
            raise LatentfuseError(f"{directory}: cannot open its item table {TABLE}.lance ({first_line(exc)})") \
                from None

    @staticmethod
    def exists(directory: Path) -> bool:
        return (Path(directory) / f"{TABLE}.lance").is_dir()

    # ---------------------------------------------------------------- facts
    @property
    def version(self) -> int:
        return int(self.table.version)

    def count(self, where: str | None = None) -> int:
        with reading(self.table.uri, where):
            return int(self.table.count_rows(where)) if where else int(self.table.count_rows())

    @property
    def columns(self) -> list[str]:
        return list(self.table.schema.names)

    @property
    def dtype(self) -> str:
        return "float16" if str(self.table.schema.field("vector").type.value_type) in ("halffloat", "float16") \
            else "float32"

    def refresh(self) -> None:
        self.table.checkout_latest()

    def pin(self) -> None:
        """Read this version from now on, whatever writers commit meanwhile."""
        self.table.checkout(self.version)

    # ---------------------------------------------------------------- writing (each call one commit)
    def add(self, rows: np.ndarray, records: Sequence[dict[str, Any]], vectors: np.ndarray,
            penalties: dict[str, np.ndarray]) -> None:
        self.table.add(self.batch(rows, records, vectors, penalties))

    def upsert(self, rows: np.ndarray, records: Sequence[dict[str, Any]], vectors: np.ndarray,
               penalties: dict[str, np.ndarray]) -> None:
        """Replace the rows of the same (source, id), insert the others: one commit."""
        (self.table.merge_insert(["source", "id"]).when_matched_update_all().when_not_matched_insert_all()
         .execute(self.batch(rows, records, vectors, penalties)))

    def delete(self, where: str) -> None:
        self.table.delete(where)

    def batch(self, rows: np.ndarray, records: Sequence[dict[str, Any]], vectors: np.ndarray,
              penalties: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        target = self.table.schema
        value_type = target.field("vector").type.value_type
        dim = target.field("vector").type.list_size
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float16 if self.dtype == "float16" else np.float32)
                        .ravel(), type=value_type)
        columns = {"row": pa.array(np.asarray(rows, dtype=np.int64)),
                   **{name: pa.array([r.get(name) for r in records], type=pa.string()) for name in RECORD_COLUMNS[1:]},
                   "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}
        for name in target.names:
            if name.startswith("penalty_"):
                side = name[len("penalty_"):]
                columns[name] = pa.array(np.asarray(penalties[side], dtype=np.float32))
        return pa.table(columns, schema=target)

    # ---------------------------------------------------------------- reading
    def scan(self, columns: Sequence[str], where: str | None = None, batch_rows: int = 65536) -> Iterator[Any]:
        """Record batches of ``columns`` (every row, or those ``where`` keeps), a batch at a time."""
        with reading(self.table.uri, where):
            query = self.table.search().select(list(columns)).limit(None)
            if where:
                query = query.where(where)
            yield from query.to_batches(batch_rows)

    def read(self, columns: Sequence[str], where: str | None = None) -> Any:
        with reading(self.table.uri, where):
            query = self.table.search().select(list(columns)).limit(None)
            return (query.where(where) if where else query).to_arrow()

    def max_row(self) -> int:
        best = -1
        for batch in self.scan(["row"]):
            if batch.num_rows:
                best = max(best, int(np.max(batch.column(0).to_numpy())))
        return best

    def ann_search(self, vector: np.ndarray, limit: int, columns: Sequence[str], where: str | None,
                   nprobes: int, refine: int, ef: int) -> Any:
        query = (self.table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
                 .distance_type(self.metric()).limit(limit).select([*columns, "_distance"]).nprobes(nprobes).ef(ef))
        if refine > 1:
            query = query.refine_factor(refine)
        if where:
            query = query.where(where, prefilter=True)
        with reading(self.table.uri, where):
            return query.to_arrow()

    def vector_index(self) -> Any | None:
        for config in self.table.list_indices():
            if "vector" in config.columns:
                return config
        return None

    def metric(self) -> str:
        """The distance the vector structure was trained on, which its queries must use (LanceDB answers a query
        in another distance without the structure): "l2", or "dot" for a structure an earlier version trained;
        "dot" without one (a scan, where the two rank unit vectors alike)."""
        if self._metric is None or self._metric[0] != self.version:
            config = self.vector_index()
            self._metric = (self.version, "dot" if config is None else
                            str(self.table.index_stats(config.name).distance_type).lower())
        return self._metric[1]

    def unindexed_rows(self) -> int:
        config = self.vector_index()
        if config is None:
            return self.count()
        return int(self.table.index_stats(config.name).num_unindexed_rows)


def vectors_of(batch: Any) -> np.ndarray:
    """(n, dim) float32 from a ``vector`` column of an Arrow batch/table."""
    column = batch.column("vector")
    if hasattr(column, "combine_chunks"):
        column = column.combine_chunks()
    dim = column.type.list_size
    return np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
