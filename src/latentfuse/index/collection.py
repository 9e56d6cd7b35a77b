"""A searchable collection: joint embeddings of one model side, the items they came from, and how to search them.

On disk (``INDEX/``)::

    index.json      format, model path + fingerprint, side, dim, index kind and its settings, what --skip-bad left out
    items.lance/    the rows: a LanceDB table (``table.py``) of row, id, source, split, label, payload, embedding
                    and each item's QB-Norm hub penalty per query side — versioned by Lance
    hubness.npz     QB-Norm statistics per bank query (``bankstats.py``), tagged with the table version

Growing an index appends rows as new Lance versions (a chunk at a time, so a killed run keeps every chunk it
committed, and adding 1,000 items writes about 1,000 rows, never the whole index); ``delete`` and ``upsert`` by
id are commits too. An open index reads the version it opened, whatever a writer commits meanwhile.

The model's hubness setting (or ``Index.hubness``) decides whether a query is ranked by QB-Norm: a text (or
image) query is normalised against the bank of its own side; a text+image query ranks by cosine. Hits always
report the cosine score. The exact kind rescores every item; an ANN kind rescores its top ``RERANK``
candidates (their stored vectors and penalties come back with them: nothing is held for all items).

``where``: a filter in LanceDB's SQL dialect over the item columns (``source = 'photos:/x'``,
``label = 'dog'``, ``split IN ('val', 'test')``), applied before ranking; a kept row's score is the one the
unfiltered search gives it (DIS decides whether to normalise a query by its top-1 in the whole index).

Items are keyed by (source spec, item id): adding a source again embeds only the ids the index lacks.
``payload`` is an image path or a text; items whose payload is in memory (Fashion-MNIST arrays) store
``null`` and are fetched back from their source on demand (``Index.payload``), as are images inside another
file (a tar shard's member, a dataset's cell: ``utils.blobs``). An index written by latentfuse before 0.9
(format 1: embeddings-*.npy + items-*.jsonl generations) is converted in place by ``latentfuse index --out DIR``
(``legacy.py``); searching or serving it says so.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from ..config import RuntimeConfig, StoreConfig
from ..data import Item, Source, build_source
from ..errors import ConfigError, DataError, LatentfuseError
from ..eval.features import embed
from ..hubness import GalleryNorm
from ..metrics import Retriever
from ..model import JointModel
from ..specs import public
from ..utils import atomic
from ..utils.hashing import digest
from ..version import __version__
from . import bankstats
from .backends import (EXACT_ROWS_ADVISED, METRIC, MIN_ANN_ROWS, REINDEX_FRACTION, BackendConfig, ExactBackend,
                       refine_of, vector_index)
from .table import RECORD_COLUMNS, TABLE, ItemTable, first_line, penalty_column, quote, vectors_of

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)
FORMAT = "latentfuse.index/2"
LEGACY_FORMAT = "latentfuse.index/1"
META = "index.json"
RERANK = 200  # ANN candidates per query rescored by QB-Norm (exact rescores all)
CHUNK = 65536  # rows per commit while growing: what a killed run can lose at most
UNIT_TOLERANCE = 1e-2  # |length − 1| an added embedding may have (half-precision encoders round)


class BadIndexError(LatentfuseError):
    """A missing, damaged or mismatched index (or one built by another model)."""


@dataclass(frozen=True)
class Hit:
    rank: int
    row: int
    id: str
    score: float
    modality: str
    payload: str | None  # image path or text; None for in-memory images
    source: str
    label: str | None = None
    cosine: float = float("nan")
    """The cosine similarity; ``score`` is what the hit was ranked by (the cosine, or the QB-Norm score)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Record:
    """One indexed item (a row of the item table, less its vectors)."""

    id: str
    source: str
    split: str
    payload: str | None
    label: str | None = None


@dataclass
class InMemory:
    """Every row of one table version in memory: what the exact kind searches (and ``embeddings`` shows)."""

    version: int
    rows: np.ndarray  # (n,) int64 row numbers, in table order
    vectors: np.ndarray  # (n, dim) float32
    penalties: dict[str, np.ndarray]  # query side → (n,) float32

    def subset(self, keep: np.ndarray) -> "InMemory":
        """The rows at positions ``keep`` alone."""
        return InMemory(self.version, self.rows[keep], self.vectors[keep],
                        {side: p[keep] for side, p in self.penalties.items()})

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions of row numbers (-1 where absent)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(self.rows):
            return np.full(len(rows), -1, dtype=np.int64)
        order = np.argsort(self.rows, kind="stable")
        at = np.searchsorted(self.rows[order], rows).clip(0, len(order) - 1)
        return np.where(self.rows[order][at] == rows, order[at], -1).astype(np.int64)


@dataclass
class Index:
    directory: Path
    model: JointModel
    model_path: str
    side: str
    backend_config: BackendConfig = field(default_factory=BackendConfig)
    table: ItemTable | None = field(default=None, repr=False)
    skipped: list[dict[str, str]] = field(default_factory=list)  # what --skip-bad left out, and why
    hubness: str = ""
    """Query-bank normalisation of searches: '' = the model's setting | none | is | dis."""
    encoded_with: str = ""
    """What the rows' encoders ran as (``Runtime.cache_tag``: '' = fp32 on torch or ONNX Runtime, else bf16,
    fp16 or onnx-int8): rows of another kind differ by more than a ranking tolerates, so growth keeps to it."""

    def __post_init__(self) -> None:
        self._payloads: dict[tuple[str, str], dict[str, Any]] = {}
        self._memory: InMemory | None = None
        self._bests: dict[str, bankstats.BankBest] | None = None
        self._count: int | None = None
        self._next: int | None = None  # the next row number, valid while the table is at _next_version
        self._next_version = -1

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(cls, directory: str | Path, model_path: str | Path, side: str | None = None,
               backend: BackendConfig | None = None) -> "Index":
        """An empty index of ``model_path``'s ``side`` (default: its image side, else its first side)."""
        model = JointModel.load(model_path)
        side = side or default_side(model)
        if side not in model.sides:
            raise ConfigError(f"model {model_path} has no side {side!r}; sides: {', '.join(model.sides)}")
        return cls(Path(directory), model, str(Path(model_path).resolve()), side, backend or BackendConfig())

    @classmethod
    def open(cls, directory: str | Path, model: str | Path | None = None,
             runtime: RuntimeConfig | None = None) -> "Index":
        """Open a saved index at its newest version; ``model`` overrides the recorded model path, and must be the
        same model; its encoders and heads run on ``runtime`` (default: every entry point's default)."""
        runtime = runtime or RuntimeConfig()
        directory = Path(directory)
        meta = read_meta(directory)
        model_path = str(model) if model is not None else recorded_model(meta, directory)
        if not (Path(model_path) / "config.json").exists():
            raise BadIndexError(f"{directory}: the model it was built with ({model_path}) is not there; "
                                "pass --model PATH to the same model")
        joint = JointModel.load(model_path, device=runtime.device, precision=runtime.precision,
                                backend=runtime.backend)
        if joint.fingerprint != meta["model"]["fingerprint"]:
            raise BadIndexError(
                f"{directory} was built with model fingerprint {meta['model']['fingerprint']} "
                f"({meta['model']['path']}), but {model_path} has fingerprint {joint.fingerprint}: its "
                "embeddings would not be comparable. Rebuild the index with "
                f"`latentfuse index --model {model_path} --data ... --out NEW_INDEX`")
        try:
            config = BackendConfig(**meta["backend"])
        except (TypeError, LatentfuseError) as exc:
            raise BadIndexError(f"{directory / META}: damaged index settings ({exc}); rebuild the index with "
                                "--overwrite") from None
        table = None
        if meta.get("table") and not ItemTable.exists(directory):
            raise BadIndexError(f"{directory}: its item table {meta['table']} is missing; rebuild the index with "
                                "--overwrite")
        if ItemTable.exists(directory):
            try:
                table = ItemTable.open(directory)
            except LatentfuseError as exc:
                raise BadIndexError(f"{exc}; rebuild the index with --overwrite") from None
            table.pin()
            check_table(directory, table, joint.dim, config)
        return cls(directory, joint, model_path, meta["side"], config, table, list(meta.get("skipped", [])),
                   encoded_with=str(meta.get("encoded_with", "")))

    # ---------------------------------------------------------------- properties
    @property
    def modality(self) -> str:
        return self.model.sides[self.side].modality

    @property
    def version(self) -> int:
        """The table version this index reads (0: no rows yet)."""
        return self.table.version if self.table is not None else 0

    def __len__(self) -> int:
        if self._count is None:
            self._count = self.table.count() if self.table is not None else 0
        return self._count

    def ids_of(self, spec: str) -> set[str]:
        """The ids this index holds from source ``spec``."""
        if self.table is None:
            return set()
        return {i for batch in self.table.scan(["id"], f"source = {quote(spec)}")
                for i in batch.column("id").to_pylist()}

    def record(self, row: int) -> Record:
        """Item ``row``'s record; KeyError when the index has no such row."""
        found = self.records_of([row])
        if row not in found:
            raise KeyError(row)
        return found[row]

    def records_of(self, rows: Sequence[int]) -> dict[int, Record]:
        if self.table is None or not len(rows):
            return {}
        listed = ", ".join(str(int(r)) for r in rows)
        table = self.table.read(RECORD_COLUMNS, f"row IN ({listed})")
        return {int(r["row"]): Record(r["id"], r["source"], r["split"], r["payload"], r["label"])
                for r in table.to_pylist()}

    def row_of(self, item_id: str, source: str | None = None) -> int:
        """The row number of item ``item_id`` (of ``source``, when ids repeat across sources); KeyError if absent."""
        where = f"id = {quote(item_id)}" + (f" AND source = {quote(source)}" if source is not None else "")
        rows = self.table.read(["row"], where).column("row").to_pylist() if self.table is not None else []
        if not rows:
            raise KeyError(item_id)
        return int(rows[0])

    def vector(self, row: int) -> np.ndarray:
        """Item ``row``'s stored embedding (float32); KeyError when the index has no such row."""
        table = self.table.read(["vector"], f"row = {int(row)}") if self.table is not None else None
        if table is None or table.num_rows == 0:
            raise KeyError(row)
        return vectors_of(table)[0]

    @property
    def embeddings(self) -> np.ndarray:
        """Every row's embedding (float32, table order) — all in memory: for small indexes and checks."""
        return self.in_memory().vectors

    @property
    def rows(self) -> np.ndarray:
        """Every row number, in the order of ``embeddings``."""
        return self.in_memory().rows

    # ---------------------------------------------------------------- adding
    def add_source(self, source: Source, split: str | None = None, store: StoreConfig | None = None, *,
                   skip_bad: bool = False, progress: bool = True, update: bool = False) -> int:
        """Embed the items of ``source``'s split that the index lacks (``update``: every item, replacing the rows of
        the ids it has — an upsert); returns how many rows were written.

        Features come through the feature store, filed by content, so growing a collection never re-encodes
        what is already indexed. Rows are added only on the runtime the index's rows were embedded on.
        """
        tag = self.model.runtime.cache_tag
        if len(self) and tag != self.encoded_with:
            raise LatentfuseError(f"{self.directory}: its rows were embedded with {self.encoded_with or 'fp32'} encoders; "
                                  f"adding rows embedded with {tag or 'fp32'} ones would mix the two in one ranking. "
                                  "Grow it with the same --backend / --precision, or rebuild it with --overwrite")
        self.encoded_with = tag
        split = split or only_split(source)
        source.check_split(split)
        data = source.load(split)
        side = data.side_for(self.modality, preferred=self.side, where=f"{source.spec} (nothing to index)")
        items = data.items[side]
        known = set() if update else self.ids_of(source.spec)
        new = [item for item in items if item.id not in known]
        if not new:
            return 0
        wanted = data
        if len(new) < len(items):
            new_ids = [item.id for item in new]
            wanted = data.subset(side, set(new_ids), f"{split}-new{len(new_ids)}-{digest(new_ids)[:10]}")
        embedded = embed(self.model, self.side, source, wanted, side, store or StoreConfig(), skip_bad=skip_bad,
                         progress=progress)
        by_id = {item.id: item for item in new}
        self.record_skipped(source.spec, split, embedded.skipped)
        records = [record_of(by_id[i], source.spec, split, data.labels.get(i)) for i in embedded.ids]
        (self.upsert if update else self.append)(embedded.x, records)
        return len(embedded.ids)

    def record_skipped(self, spec: str, split: str, skipped: list[tuple[str, str]]) -> None:
        """Remember items --skip-bad left out (once each), so the index says what it lacks and why."""
        spec = public(spec)  # index.json names sources without the machine's paths
        seen = {(s["source"], s["id"]) for s in self.skipped}
        self.skipped += [{"source": spec, "split": split, "id": item_id, "reason": reason}
                         for item_id, reason in skipped if (spec, item_id) not in seen]

    def append(self, embeddings: np.ndarray, records: list[Record]) -> None:
        """Add rows (unit-length joint embeddings of this index's side), ``CHUNK`` rows a commit."""
        if len(embeddings) != len(records):
            raise ValueError("one record per embedding row")
        self._check_rows(embeddings)
        for start in range(0, len(records), CHUNK):
            self._write(np.asarray(embeddings[start:start + CHUNK]), records[start:start + CHUNK], upsert=False)

    def upsert(self, embeddings: np.ndarray, records: list[Record]) -> None:
        """Replace the rows of the same (source, id) — each keeps its row number — and add the others."""
        if len(embeddings) != len(records):
            raise ValueError("one record per embedding row")
        self._check_rows(embeddings)
        for start in range(0, len(records), CHUNK):
            self._write(np.asarray(embeddings[start:start + CHUNK]), records[start:start + CHUNK], upsert=True)

    def delete(self, ids: Iterable[str] = (), where: str | None = None) -> int:
        """Remove the rows of these ids (of any source) and/or those ``where`` keeps, in one commit; → how many."""
        ids = list(ids)
        clauses = [f"id IN ({', '.join(quote(i) for i in ids)})"] if ids else []
        clauses += [f"({where})"] if where else []
        if not clauses or self.table is None:
            return 0
        condition = " OR ".join(clauses)
        gone = self._rows_where(condition)
        if not len(gone):
            return 0
        self.table.refresh()
        self.table.delete(condition)
        self._committed()
        bests = self.bank_bests()
        for side, best in bests.items():
            lost = np.flatnonzero(np.isin(best.best_row, gone))
            if len(lost):
                bankstats.recompute(self.table, self.model.query_bank[side], self.model.hubness.beta, only=lost,
                                    start=best)
        bankstats.save(self.directory, self.version, self.model.hubness.beta, bests)
        return len(gone)

    def _rows_where(self, where: str) -> np.ndarray:
        return np.concatenate([b.column("row").to_numpy() for b in self.table.scan(["row"], where)] or
                              [np.zeros(0, dtype=np.int64)])

    def _check_rows(self, embeddings: np.ndarray) -> None:
        """Every row finite and unit length, checked on the whole call before its first commit (so a row number in
        the message is the caller's, not one within a commit's chunk)."""
        if not np.isfinite(embeddings).all():
            raise LatentfuseError(f"{self.directory}: embeddings to add hold NaN/inf values; nothing was written")
        lengths = np.linalg.norm(np.asarray(embeddings, dtype=np.float32), axis=1)
        off = np.flatnonzero(np.abs(lengths - 1) > UNIT_TOLERANCE)
        if off.size:  # the structure ranks by distance, the hits by inner product: alike only on unit vectors
            raise LatentfuseError(f"{self.directory}: embedding row {off[0]} to add has length {lengths[off[0]]:.4g}; "
                                  "an index holds unit-length joint embeddings (model.encode's default) — normalise "
                                  "the rows; nothing was written")

    def _write(self, embeddings: np.ndarray, records: Sequence[Record], upsert: bool) -> None:
        table = self._writable_table()
        vectors = stored(embeddings, table.dtype)
        rows = self._row_numbers(records, upsert)
        bests = self.bank_bests()
        penalties = {side: bests[side].grow(bank, vectors, rows, self.model.hubness.beta)
                     for side, bank in self.model.query_bank.items()}
        dicts = [asdict(r) for r in records]
        (table.upsert if upsert else table.add)(rows, dicts, vectors, penalties)
        self._committed()
        if upsert:  # a replaced row may have been some bank query's best under its old vector
            self._bests = None
            bests = self.bank_bests()
        bankstats.save(self.directory, self.version, self.model.hubness.beta, bests)

    def _row_numbers(self, records: Sequence[Record], upsert: bool) -> np.ndarray:
        existing: dict[tuple[str, str], int] = {}
        if upsert and len(self):
            keys = {(r.source, r.id) for r in records}
            for spec in {s for s, _ in keys}:
                ids = [i for s, i in keys if s == spec]
                where = f"source = {quote(spec)} AND id IN ({', '.join(quote(i) for i in ids)})"
                for batch in self.table.scan(["row", "id"], where):
                    existing.update({(spec, i): int(r) for i, r in zip(batch.column("id").to_pylist(),
                                                                        batch.column("row").to_pylist())})
        start = self._next_row()
        fresh = iter(range(start, start + len(records)))
        rows = np.array([existing.get((r.source, r.id), -1) for r in records], dtype=np.int64)
        rows[rows < 0] = [next(fresh) for _ in range(int((rows < 0).sum()))]
        self._next = start + int((rows >= start).sum())
        return rows

    def _next_row(self) -> int:
        if self._next is None or self._next_version != self.version:
            self._next = (self.table.max_row() + 1) if self.table is not None and len(self) else 0
            self._next_version = self.version
        return self._next

    def _writable_table(self) -> ItemTable:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.table is None:
            self.table = ItemTable.create(self.directory, self.model.dim, self.backend_config.dtype,
                                          list(self.model.query_bank))
        else:
            self.table.refresh()
        return self.table

    def _committed(self) -> None:
        """After a commit: read the new version; drop what described the old one."""
        self._memory, self._count = None, None
        self._next_version = self.version

    def use_backend(self, config: BackendConfig) -> None:
        """Switch index kind or its query-time knobs (nprobe, ef_search, refine); ``save`` builds a new structure."""
        if config.dtype != self.backend_config.dtype and self.table is not None:
            raise ConfigError(f"{self.directory} stores {self.backend_config.dtype} embeddings; another dtype "
                              "needs a new index (--overwrite)")
        self.backend_config = config

    # ---------------------------------------------------------------- saving
    def save(self, rebuild: bool = False) -> Path:
        """Bring the ANN structure up to date (trained once there are enough rows; new rows folded in once they
        are ``REINDEX_FRACTION`` of it; ``rebuild``: retrained on everything), then write index.json (atomic)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.table is not None and self.backend_config.kind != "exact":
            self.table.refresh()
            self._update_structure(rebuild)
        elif self.table is not None and len(self) > EXACT_ROWS_ADVISED:
            log.warning("%s: an exact index of %d items holds every embedding in memory to search (%.1f GB); "
                        "`latentfuse index --out %s --index-kind ivf-rq` keeps them on disk", self.directory,
                        len(self), len(self) * self.model.dim * 4 / 1e9, self.directory)
        atomic.write_json(self.directory / META, {
            "format": FORMAT, "latentfuse_version": __version__,
            "model": {"path": _relative(self.model_path, self.directory), "fingerprint": self.model.fingerprint,
                      "method": self.model.method.name},
            "side": self.side, "modality": self.modality, "dim": self.model.dim,
            "backend": self.backend_config.to_dict(), "encoded_with": self.encoded_with, "skipped": self.skipped,
            "table": f"{TABLE}.lance" if self.table is not None else None})
        return self.directory

    def _update_structure(self, rebuild: bool) -> None:
        table, count = self.table, self.table.count()
        current = table.vector_index()
        built_kind = current.index_type if current is not None else None
        wanted = {"ivf": "IvfFlat", "ivf-pq": "IvfPq", "ivf-rq": "IvfRq", "hnsw": "IvfHnswSq"}[self.backend_config.kind]
        if count < MIN_ANN_ROWS:
            return  # LanceDB's scan of so few rows is exact and as fast
        try:
            stale = built_kind is not None and table.metric() != METRIC  # an earlier version's inner-product cells
            if rebuild or built_kind != wanted or stale:
                log.info("training the %s structure on %d rows (minutes at millions of rows)%s",
                         self.backend_config.kind, count, "; its cells were trained on inner product" if stale else "")
                table.table.create_index("vector", config=vector_index(self.backend_config, count, self.model.dim),
                                         replace=True)
            elif table.unindexed_rows() > REINDEX_FRACTION * count:
                log.info("folding %d new rows into the %s structure", table.unindexed_rows(), self.backend_config.kind)
                table.table.optimize()
        except (ValueError, RuntimeError, OSError) as exc:  # the rows are committed; only the structure failed
            raise LatentfuseError(f"{self.directory}: building its {self.backend_config.kind} structure failed "
                                  f"({first_line(exc)}); the rows are saved — run `latentfuse index --out "
                                  f"{self.directory} --rebuild` to try again") from None
        self._committed()

    # ---------------------------------------------------------------- QB-Norm statistics
    def bank_bests(self) -> dict[str, bankstats.BankBest]:
        """Per query side: each bank query's best row (read from hubness.npz, else recomputed from the rows)."""
        if self._bests is None:
            banks, beta = self.model.query_bank, self.model.hubness.beta
            loaded = bankstats.load(self.directory, self.version, beta, banks) if self.table is not None else {}
            if loaded and not self._rows_exist(np.concatenate([b.best_row for b in loaded.values()])):
                loaded = {}  # names rows this version does not hold: damaged, recomputed
            self._bests = {side: loaded.get(side) or (
                bankstats.recompute(self.table, bank, beta) if self.table is not None and len(self)
                else bankstats.BankBest.empty(len(bank))) for side, bank in banks.items()}
        return self._bests

    def _rows_exist(self, rows: np.ndarray) -> bool:
        wanted = np.unique(rows[rows >= 0])
        if not len(wanted):
            return True
        return self.table.count(f"row IN ({', '.join(str(int(r)) for r in wanted)})") == len(wanted)

    def in_memory(self) -> InMemory:
        """Every row of this version in memory (the exact kind's search; built once per version)."""
        if self._memory is None or self._memory.version != self.version:
            sides = [s for s in self.model.query_bank if self.table is not None
                     and penalty_column(s) in self.table.columns]
            rows, vectors, penalties = [], [], {s: [] for s in sides}
            for batch in (self.table.scan(["row", "vector", *map(penalty_column, sides)])
                          if self.table is not None else []):
                rows.append(batch.column("row").to_numpy())
                vectors.append(vectors_of(batch))
                for s in sides:
                    penalties[s].append(batch.column(penalty_column(s)).to_numpy())
            self._memory = InMemory(self.version, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                                    np.concatenate(vectors) if vectors else np.zeros((0, self.model.dim), np.float32),
                                    {s: np.concatenate(p).astype(np.float32) for s, p in penalties.items() if p})
        return self._memory

    # ---------------------------------------------------------------- searching
    def query_vector(self, text: str | None = None, image: Any = None,
                     embed: Callable[[str, Any], np.ndarray] | None = None) -> np.ndarray:
        """The joint embedding of a text, an image, or both (their normalised sum: "like this, but …").

        ``embed(modality, payload)`` encodes one query (default: directly; the server passes its batcher).
        """
        embed = embed or (lambda modality, payload: self.embed_queries(modality, [payload])[0])
        parts = []
        if text is not None and str(text).strip():
            parts.append(embed("text", str(text)))
        if image is not None:
            parts.append(embed("image", image))
        return combine(parts)

    def embed_queries(self, modality: str, payloads: list[Any]) -> np.ndarray:
        """Joint embeddings of several queries of one modality in one encoder call (the server batches)."""
        return self.model.encode(self.model.side_for(modality, other_than=self.side, purpose="query"), payloads)

    def search(self, text: str | None = None, image: Any = None, k: int = 10, where: str | None = None) -> list[Hit]:
        """The ``k`` items closest to the query (of those ``where`` keeps), best first."""
        return self.search_vectors(self.query_vector(text, image)[None, :], k, self.query_side(text, image),
                                   where)[0]

    def query_side(self, text: str | None = None, image: Any = None) -> str | None:
        """The model side a text-only or image-only query is embedded by (whose query bank normalises its
        scores); None for a text+image query."""
        has_text = text is not None and bool(str(text).strip())
        if has_text == (image is not None):
            return None
        return self.model.side_for("text" if has_text else "image", other_than=self.side, purpose="query")

    def search_vectors(self, queries: np.ndarray, k: int, query_side: str | None = None,
                       where: str | None = None) -> list[list[Hit]]:
        """Hits for each query vector; ``query_side``: the model side that embedded them, so the model's query
        bank of that side can normalise the scores (None: rank by cosine)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise LatentfuseError(f"k must be a whole number of at least 1, got {k!r}")
        queries = np.asarray(queries, dtype=np.float32)
        normalise = self.active_norm(query_side) is not None
        if not len(self):
            return [[] for _ in queries]
        records: dict[int, Record] = {}
        if self.backend_config.kind == "exact":
            ranked = self._exact(queries, k, query_side if normalise else None, where)
            records = self.records_of(sorted({int(r) for rows, _, _ in ranked for r in rows}))
        else:  # the candidates' records come back with them: no second lookup
            ranked = [self._approximate(q, k, query_side if normalise else None, where, records) for q in queries]
        return [[Hit(rank, int(row), records[int(row)].id, float(score), self.modality, records[int(row)].payload,
                     records[int(row)].source, records[int(row)].label, float(cosine))
                 for rank, (row, score, cosine) in enumerate(zip(rows, scores, cosines), start=1)
                 if int(row) in records]
                for rows, scores, cosines in ranked]

    def active_norm(self, query_side: str | None) -> str | None:
        """The QB-Norm (is | dis) that ranks queries of ``query_side`` under the current setting, or None."""
        norm = self.model.hub_norm(self.hubness)
        if query_side is not None:
            self.model.require_bank(query_side, self.hubness)
        if norm == "none" or query_side is None or query_side not in self.model.query_bank:
            return None
        return norm

    def gallery_norm(self, query_side: str, memory: InMemory, query_hub: np.ndarray | None = None) -> GalleryNorm:
        """QB-Norm statistics of the rows in ``memory`` for ``query_side`` (a bank query whose best row is not
        among them activates nothing). ``query_hub``: DIS's per-query decision, made on the whole index when
        ``memory`` holds the rows a filter kept."""
        best = self.bank_bests()[query_side]
        penalty = memory.penalties.get(query_side)
        if penalty is None:  # a bank the model gained after these rows were written: computed here
            penalty = self.model.gallery_norm(query_side, memory.vectors, "is").penalty.numpy()
        at = memory.positions(best.best_row)
        return GalleryNorm(torch.from_numpy(np.ascontiguousarray(penalty, dtype=np.float32)),
                           torch.from_numpy(best.best_score), torch.from_numpy(np.asarray(at, dtype=np.int64)),
                           self.model.hubness.beta, dynamic=self.active_norm(query_side) == "dis",
                           query_hub=None if query_hub is None else torch.from_numpy(query_hub))

    def hub_queries(self, query_side: str | None, top_rows: Callable[[], np.ndarray]) -> np.ndarray | None:
        """For a filtered search under DIS: whether each query's raw top-1 row in the whole index
        (``top_rows()``) is a hub. A filter keeps rows out of the answer, not out of that decision, so a row's
        score is the same with or without a filter. None where no such decision is made."""
        if query_side is None or self.active_norm(query_side) != "dis":
            return None
        return np.isin(top_rows(), self.bank_bests()[query_side].best_row)

    def _allowed(self, memory: InMemory, where: str | None) -> np.ndarray | None:
        """Positions (sorted) of the rows ``where`` keeps; None = all."""
        if not where:
            return None
        return np.flatnonzero(np.isin(memory.rows, self._rows_where(where)))

    def _exact(self, queries: np.ndarray, k: int, query_side: str | None, where: str | None
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        memory = self.in_memory()
        keep = self._allowed(memory, where)
        hub = None
        if keep is not None:
            whole = memory  # DIS decides on the query's raw top-1 among all rows, as the unfiltered search
            hub = self.hub_queries(query_side,
                                   lambda: whole.rows[Retriever(whole.vectors).raw(queries).argmax(1).numpy()])
            memory = memory.subset(keep)
        vectors = memory.vectors
        if not len(vectors):
            return [(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)) for _ in queries]
        if query_side is None:
            scores, at = ExactBackend(vectors).search(queries, min(k, len(vectors)))
            cosines = scores
        else:
            norm = self.gallery_norm(query_side, memory, hub)
            scores, cosines, at = Retriever(vectors, norm).top_k(queries, min(k, len(vectors)))
        return [(memory.rows[p[p >= 0]], s[p >= 0], c[p >= 0]) for p, s, c in zip(at, scores, cosines)]

    def _approximate(self, query: np.ndarray, k: int, query_side: str | None, where: str | None,
                     records: dict[int, Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LanceDB's ANN candidates (their stored vectors re-scored exactly), QB-Norm over the candidates; the
        candidates' records are added to ``records``."""
        penalty = penalty_column(query_side) if query_side is not None else None
        columns = [*RECORD_COLUMNS, "vector", *([penalty] if penalty in self.table.columns else [])]
        limit = max(k, RERANK) if query_side else k
        found = self._ann(query, k, limit, columns, where)
        rows, vectors = found.column("row").to_numpy(), vectors_of(found)
        listed = found.select(list(RECORD_COLUMNS)).to_pydict()
        records.update({int(r): Record(i, src, sp, pay, lab) for r, i, src, sp, lab, pay in
                        zip(listed["row"], listed["id"], listed["source"], listed["split"], listed["label"],
                            listed["payload"])})
        cosines = vectors @ query
        order = np.lexsort((rows, -cosines))
        rows, vectors, cosines = rows[order], vectors[order], cosines[order]
        if query_side is None or not len(rows):
            return rows[:k], cosines[:k], cosines[:k]
        memory = InMemory(self.version, rows, vectors,
                          {query_side: found.column(penalty).to_numpy()[order]} if penalty in columns else {})
        norm = self.gallery_norm(query_side, memory, self.hub_queries(
            query_side, lambda: self._ann_top_row(query, k, limit)) if where else None)
        candidates = (cosines[None, :].astype(np.float32), np.arange(len(rows))[None, :])  # best raw first
        scores, raw, at = Retriever(vectors, norm).top_k(query[None, :], min(k, len(rows)), candidates)
        picked = at[0][at[0] >= 0]
        return rows[picked], scores[0][:len(picked)], raw[0][:len(picked)]

    def _ann(self, query: np.ndarray, k: int, limit: int, columns: list[str], where: str | None) -> pa.Table:
        """LanceDB's ``limit`` nearest rows by the structure, the best refine × k re-ranked on stored vectors."""
        config = self.backend_config
        refine = -(-refine_of(config) * k // limit)  # refine × k, whatever the limit
        return self.table.ann_search(query, limit, columns, where, config.nprobe, refine,
                                     max(config.ef_search, limit * refine))

    def _ann_top_row(self, query: np.ndarray, k: int, limit: int) -> np.ndarray:
        """(1,) the row an unfiltered search of ``query`` ranks first by raw similarity (the same candidates)."""
        found = self._ann(query, k, limit, ["row", "vector"], None)
        rows, cosines = found.column("row").to_numpy(), vectors_of(found) @ query
        return rows[np.lexsort((rows, -cosines))[:1]]

    def payload(self, row: int) -> Any:
        """What item ``row`` is: its stored path / text, or (in-memory images) re-read from its source."""
        record = self.record(row)
        if record.payload is not None:
            return record.payload
        key = (record.source, record.split)
        if key not in self._payloads:
            data = build_source(record.source).load(record.split)
            side = data.side_for(self.modality, preferred=self.side)  # ids may repeat across sides (webdataset:)
            self._payloads[key] = {item.id: item.payload for item in data.items[side]}
        return self._payloads[key].get(record.id)


def stored(embeddings: np.ndarray, dtype: str) -> np.ndarray:
    """The embeddings as the table stores them (float16 rounds), in float32: what QB-Norm must meet."""
    x = np.asarray(embeddings, dtype=np.float32)
    return x.astype(np.float16).astype(np.float32) if dtype == "float16" else x


def check_table(directory: Path, table: ItemTable, dim: int, config: BackendConfig) -> None:
    names = set(table.columns)
    missing = [c for c in (*RECORD_COLUMNS, "vector") if c not in names]
    width = table.table.schema.field("vector").type.list_size if "vector" in names else None
    if missing or width != dim:
        raise BadIndexError(f"{directory}: damaged item table (missing columns {missing}, embedding width {width}, "
                            f"the model's {dim}); rebuild the index with --overwrite")
    if table.dtype != config.dtype:
        raise BadIndexError(f"{directory / META}: says {config.dtype} embeddings, the table holds {table.dtype}; "
                            "the index is damaged, rebuild it with --overwrite")


def combine(parts: list[np.ndarray]) -> np.ndarray:
    """One query vector from one or more unit vectors: their sum, renormalised."""
    if not parts:
        raise LatentfuseError("a query needs text, an image, or both")
    vector = np.sum(parts, axis=0)
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def default_side(model: JointModel) -> str:
    """What an index holds unless told: the model's image side, else its first side."""
    has_image = any(s.modality == "image" for s in model.sides.values())
    return model.side_for("image") if has_image else next(iter(model.sides))


def only_split(source: Source) -> str:
    splits = source.splits()
    if len(splits) == 1:
        return splits[0]
    raise DataError(f"{source.spec} has splits {', '.join(splits)}: pick one with --split")


def record_of(item: Item, spec: str, split: str, label: str | None) -> Record:
    payload = item.payload if isinstance(item.payload, str) else (
        str(Path(item.payload).resolve()) if isinstance(item.payload, os.PathLike) else None)
    return Record(item.id, spec, split, payload, label)


def _relative(model_path: str, directory: Path) -> str:
    """The model's folder as index.json records it: relative to the index (no path of this machine), so an
    index and its model can move together; absolute only where no relative path exists (another drive)."""
    try:
        return os.path.relpath(Path(model_path).resolve(), Path(directory).resolve())
    except ValueError:
        return str(model_path)


def recorded_model(meta: dict[str, Any], directory: Path) -> str:
    """The model folder index.json names, resolved against the index folder (older indexes: absolute)."""
    return str((Path(directory) / meta["model"]["path"]).resolve())


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META
    if not path.exists():
        raise BadIndexError(f"{directory}: not a latentfuse index ({META} is missing); "
                            "build one with `latentfuse index --model MODEL --data SOURCE --out DIR`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadIndexError(f"{path}: not valid JSON ({exc}); the index is damaged, rebuild it with --overwrite") from None
    found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
    if found == LEGACY_FORMAT:
        raise LegacyIndexError(f"{directory} is an index of an older latentfuse (format {LEGACY_FORMAT}); convert it "
                               f"once, keeping every row, with `latentfuse index --out {directory}`")
    if found != FORMAT:
        raise BadIndexError(f"{path}: format {found!r}, expected {FORMAT!r}")
    for key, kind in META_FIELDS.items():
        value: Any = meta
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadIndexError(f"{path}: field {key!r} must be {kind.__name__}, got {value!r:.60}; the index is "
                                "damaged, rebuild it with --overwrite")
    return meta


class LegacyIndexError(BadIndexError):
    """An index written by latentfuse before the LanceDB table (format 1): convertible (``legacy.py``)."""


META_FIELDS: dict[str, Any] = {"model.path": str, "model.fingerprint": str, "side": str, "backend": dict}
