"""A searchable collection: joint embeddings of one model side, the items they came from, and a backend.

On disk (``INDEX/``)::

    index.json                  format, model path + fingerprint, side, dim, count, backend, sources, files
    embeddings-000003.npy       float32 (count, dim), L2-normalised rows
    items-000003.jsonl          one line per row: {"id", "source", "split", "payload", "label"}

    faiss-000003.index          the ivf / hnsw structure (only with those backends)
    hubness-000003.npz          QB-Norm statistics of the items under the model's query banks (``hubness.py``):
                                per query side, each item's hub penalty and each bank query's best match

The model's hubness setting (or ``Index.hubness``) decides whether a query is ranked by QB-Norm: a text
(or image) query is normalised against the bank of its own side; a text+image query ranks by cosine. Hits
always report the cosine score. The exact backend rescores every item; a faiss one rescores its top
``RERANK`` candidates.

The embeddings are the source of truth: a missing or mismatched faiss file is rebuilt from them.

Every change writes a new *generation* of the data files (each atomically), then ``index.json`` naming
them (atomically), then removes the previous generation. A reader therefore always sees one complete
generation, and a run killed mid-way leaves the last committed index intact (at worst, orphan files of an
unfinished generation, which the next save removes).

Items are keyed by (source spec, item id): adding a source again embeds only the ids the index lacks.
``payload`` is an image path or a text; items whose payload is in memory (Fashion-MNIST arrays) store
``null`` and are fetched back from their source on demand (``Index.payload``), as are images inside another
file (a tar shard's member, a dataset's cell: ``utils.blobs``).
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

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
from .backends import Backend, BackendConfig, ExactBackend, FaissBackend, build_backend

FORMAT = "latentfuse.index/1"
META = "index.json"
GENERATION_FILE = re.compile(r"(embeddings-\d{6}\.npy|items-\d{6}\.jsonl|faiss-\d{6}\.index|hubness-\d{6}\.npz)")
RERANK = 200  # faiss candidates per query rescored by QB-Norm (exact rescores all)


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
    """One indexed item (a line of items-*.jsonl)."""

    id: str
    source: str
    split: str
    payload: str | None
    label: str | None = None


@dataclass
class Index:
    directory: Path
    model: JointModel
    model_path: str
    side: str
    backend_config: BackendConfig = field(default_factory=BackendConfig)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    records: list[Record] = field(default_factory=list)
    generation: int = 0
    backend: Backend | None = field(default=None, repr=False)
    skipped: list[dict[str, str]] = field(default_factory=list)  # what --skip-bad left out, and why
    hubness: str = ""
    """Query-bank normalisation of searches: '' = the model's setting | none | is | dis."""
    norms: dict[str, GalleryNorm] = field(default_factory=dict, repr=False)
    """QB-Norm statistics of the current items per query side (saved with each generation)."""
    encoded_with: str = ""
    """What the rows' encoders ran as (``Runtime.cache_tag``: '' = fp32 on torch or ONNX Runtime, else bf16,
    fp16 or onnx-int8): rows of another kind differ by more than a ranking tolerates, so growth keeps to it."""

    def __post_init__(self) -> None:
        if self.embeddings.size == 0:
            self.embeddings = np.zeros((0, self.model.dim), dtype=np.float32)
        if self.backend is None:
            self.backend = build_backend(self.embeddings, self.backend_config)
        self._payloads: dict[tuple[str, str], dict[str, Any]] = {}

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
        """Open a saved index; ``model`` overrides the recorded model path, and must be the same model; its
        encoders and heads run on ``runtime`` (default: every entry point's default)."""
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
        embeddings = read_embeddings(directory / meta["files"]["embeddings"])
        records = read_records(directory / meta["files"]["items"])
        if not (len(records) == len(embeddings) == meta["count"]) or embeddings.shape[1:] != (joint.dim,):
            raise BadIndexError(f"{directory}: damaged index ({meta['count']} items listed, "
                                f"{len(records)} item rows, embeddings {embeddings.shape})")
        try:
            config = BackendConfig(**meta["backend"])
        except (TypeError, LatentfuseError) as exc:
            raise BadIndexError(f"{directory / META}: damaged backend settings ({exc})") from None
        return cls(directory, joint, model_path, meta["side"], config, embeddings, records, meta["generation"],
                   saved_backend(directory, meta, config), list(meta.get("skipped", [])),
                   norms=saved_norms(directory, meta, joint), encoded_with=str(meta.get("encoded_with", "")))

    # ---------------------------------------------------------------- properties
    @property
    def modality(self) -> str:
        return self.model.sides[self.side].modality

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> set[tuple[str, str]]:
        return {(r.source, r.id) for r in self.records}

    # ---------------------------------------------------------------- adding
    def add_source(self, source: Source, split: str | None = None, store: StoreConfig | None = None, *,
                   skip_bad: bool = False, progress: bool = True) -> int:
        """Embed the items of ``source``'s split that the index lacks; returns how many were added.

        Features come through the feature store, filed by content, so growing a collection never re-encodes
        what is already indexed. Rows are added only on the runtime the index's rows were embedded on.
        """
        tag = self.model.runtime.cache_tag
        if self.records and tag != self.encoded_with:
            raise LatentfuseError(f"{self.directory}: its rows were embedded with {self.encoded_with or 'fp32'} encoders; "
                                  f"adding rows embedded with {tag or 'fp32'} ones would mix the two in one ranking. "
                                  "Grow it with the same --backend / --precision, or rebuild it with --overwrite")
        self.encoded_with = tag
        split = split or only_split(source)
        source.check_split(split)
        data = source.load(split)
        side = data.side_for(self.modality, preferred=self.side, where=f"{source.spec} (nothing to index)")
        known = {item_id for spec, item_id in self.keys() if spec == source.spec}
        items = data.items[side]
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
        self.append(embedded.x, [record_of(by_id[i], source.spec, split, data.labels.get(i))
                                 for i in embedded.ids])
        return len(embedded.ids)

    def record_skipped(self, spec: str, split: str, skipped: list[tuple[str, str]]) -> None:
        """Remember items --skip-bad left out (once each), so the index says what it lacks and why."""
        spec = public(spec)  # index.json names sources without the machine's paths
        seen = {(s["source"], s["id"]) for s in self.skipped}
        self.skipped += [{"source": spec, "split": split, "id": item_id, "reason": reason}
                         for item_id, reason in skipped if (spec, item_id) not in seen]

    def append(self, embeddings: np.ndarray, records: list[Record]) -> None:
        """Add rows (already joint embeddings of this index's side) in memory; ``save`` commits them."""
        if len(embeddings) != len(records):
            raise ValueError("one record per embedding row")
        self.embeddings = np.concatenate([np.asarray(self.embeddings, dtype=np.float32),
                                          np.asarray(embeddings, dtype=np.float32)])
        self.records += records
        if isinstance(self.backend, FaissBackend) and self.backend.count == len(self.records) - len(records):
            self.backend.add(embeddings)  # grow the trained structure; no retraining
        else:
            self.backend = build_backend(self.embeddings, self.backend_config)
        new = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        self.norms = {side: norm.grown(self.model.query_bank[side], new) for side, norm in self.norms.items()
                      if len(norm.penalty) + len(new) == len(self.records)}

    def use_backend(self, config: BackendConfig) -> None:
        """Switch backend; query-time knobs of the same faiss structure (nprobe, ef_search) apply in place."""
        same_structure = (config.kind, config.m) == (self.backend_config.kind, self.backend_config.m)
        self.backend_config = config
        if same_structure and isinstance(self.backend, FaissBackend):
            self.backend.tune(config)
        elif not same_structure:
            self.backend = build_backend(self.embeddings, config)

    # ---------------------------------------------------------------- saving
    def save(self) -> Path:
        """Commit the current rows as a new generation (atomic; see the module docstring)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        generation = max(self.generation, _newest_generation(self.directory)) + 1
        files = {"embeddings": f"embeddings-{generation:06d}.npy", "items": f"items-{generation:06d}.jsonl"}
        with atomic.atomic_path(self.directory / files["embeddings"]) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(self.embeddings, dtype=np.float32))
        atomic.write_text(self.directory / files["items"],
                          "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in self.records))
        if isinstance(self.backend, FaissBackend):
            files["faiss"] = f"faiss-{generation:06d}.index"
            with atomic.atomic_path(self.directory / files["faiss"]) as tmp:
                self.backend.write(tmp)
        norms = {side: self.norm_stats(side) for side in self.model.query_bank}
        if norms:
            files["hubness"] = f"hubness-{generation:06d}.npz"
            with atomic.atomic_path(self.directory / files["hubness"]) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **{f"{side}.{name}": getattr(norm, name).numpy()
                                        for side, norm in norms.items() for name in NORM_ARRAYS},
                             beta=np.float64(self.model.hubness.beta))
        atomic.write_json(self.directory / META, {
            "format": FORMAT, "latentfuse_version": __version__,
            "model": {"path": _relative(self.model_path, self.directory), "fingerprint": self.model.fingerprint,
                      "method": self.model.method.name},
            "side": self.side, "modality": self.modality, "dim": self.model.dim, "count": len(self.records),
            "generation": generation, "backend": self.backend_config.to_dict(), "encoded_with": self.encoded_with,
            "sources": sources_summary(self.records), "skipped": self.skipped, "files": files})
        self.generation = generation
        for stale in self.directory.iterdir():
            if GENERATION_FILE.fullmatch(stale.name) and stale.name not in files.values():
                # the previous generation, or orphans of a killed save: only names this class writes
                stale.unlink(missing_ok=True)
        return self.directory

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

    def search(self, text: str | None = None, image: Any = None, k: int = 10) -> list[Hit]:
        """The ``k`` items closest to the query, best first."""
        return self.search_vectors(self.query_vector(text, image)[None, :], k, self.query_side(text, image))[0]

    def query_side(self, text: str | None = None, image: Any = None) -> str | None:
        """The model side a text-only or image-only query is embedded by (whose query bank normalises its
        scores); None for a text+image query."""
        has_text = text is not None and bool(str(text).strip())
        if has_text == (image is not None):
            return None
        return self.model.side_for("text" if has_text else "image", other_than=self.side, purpose="query")

    def search_vectors(self, queries: np.ndarray, k: int, query_side: str | None = None) -> list[list[Hit]]:
        """Hits for each query vector; ``query_side``: the model side that embedded them, so the model's query
        bank of that side can normalise the scores (None: rank by cosine)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise LatentfuseError(f"k must be a whole number of at least 1, got {k!r}")
        if not len(self.records):
            return [[] for _ in queries]
        queries = np.asarray(queries, dtype=np.float32)
        norm = self.active_norm(query_side)
        if norm is None:
            scores, rows = self.backend.search(queries, min(k, len(self.records)))
            cosines = scores
        else:
            scores, cosines, rows = self._normalised_search(queries, k, norm)
        return [[self.hit(rank, int(row), float(score), float(cosine))
                 for rank, (row, score, cosine) in enumerate(((r, s, c) for r, s, c in zip(rs, ss, cs) if r >= 0),
                                                             start=1)]
                for rs, ss, cs in zip(rows, scores, cosines)]

    def active_norm(self, query_side: str | None) -> GalleryNorm | None:
        """The QB-Norm that ranks queries of ``query_side`` under the current setting, or None."""
        norm = self.model.hub_norm(self.hubness)
        if query_side is not None:
            self.model.require_bank(query_side, self.hubness)
        if norm == "none" or query_side is None or query_side not in self.model.query_bank:
            return None
        return dataclasses.replace(self.norm_stats(query_side), dynamic=norm == "dis")

    def norm_stats(self, query_side: str) -> GalleryNorm:
        """QB-Norm statistics of the items for queries of ``query_side`` (computed once, kept up to date)."""
        if query_side not in self.norms:
            self.norms[query_side] = self.model.gallery_norm(query_side, self.embeddings, "dis")
        return self.norms[query_side]

    def _normalised_search(self, queries: np.ndarray, k: int,
                           norm: GalleryNorm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(QB-Norm scores, cosines, rows), ranked by the former (``metrics.Retriever``, as evaluation ranks):
        all items (exact), or the backend's top candidates."""
        n = len(self.records)
        candidates = None if isinstance(self.backend, ExactBackend) else \
            self.backend.search(queries, min(n, max(k, RERANK)))
        return Retriever(self.embeddings, norm).top_k(queries, min(k, n), candidates)

    def hit(self, rank: int, row: int, score: float, cosine: float | None = None) -> Hit:
        record = self.records[row]
        return Hit(rank, row, record.id, score, self.modality, record.payload, record.source, record.label,
                   score if cosine is None else cosine)

    def payload(self, row: int) -> Any:
        """What item ``row`` is: its stored path / text, or (in-memory images) re-read from its source."""
        record = self.records[row]
        if record.payload is not None:
            return record.payload
        key = (record.source, record.split)
        if key not in self._payloads:
            data = build_source(record.source).load(record.split)
            side = data.side_for(self.modality, preferred=self.side)  # ids may repeat across sides (webdataset:)
            self._payloads[key] = {item.id: item.payload for item in data.items[side]}
        return self._payloads[key].get(record.id)


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


def sources_summary(records: Iterable[Record]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        counts[(r.source, r.split)] = counts.get((r.source, r.split), 0) + 1
    return [{"source": public(s), "split": split, "count": n} for (s, split), n in counts.items()]


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


def read_embeddings(path: Path) -> np.ndarray:
    try:
        embeddings = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadIndexError(f"{path}: damaged embeddings file ({exc}); rebuild the index with --overwrite") from None
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise BadIndexError(f"{path}: expected a float (count, dim) array, got {embeddings.dtype} "
                            f"{embeddings.shape}; rebuild the index with --overwrite")
    if not np.isfinite(embeddings).all():
        raise BadIndexError(f"{path}: holds NaN/inf rows; rebuild the index with --overwrite")
    return embeddings


def read_records(path: Path) -> list[Record]:
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadIndexError(f"{path}: cannot read the item rows ({exc}); rebuild the index with --overwrite") from None
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            records.append(Record(**row))
        except (ValueError, TypeError) as exc:
            raise BadIndexError(f"{path}:{number}: damaged item row ({exc})") from None
        if not isinstance(row.get("id"), str) or not isinstance(row.get("source"), str):
            raise BadIndexError(f"{path}:{number}: damaged item row (id and source must be strings)")
    return records


def saved_backend(directory: Path, meta: dict[str, Any], config: BackendConfig) -> Backend | None:
    """The saved faiss structure of this generation, when it is there and complete (else None: rebuild)."""
    name = meta["files"].get("faiss")
    if not name or config.kind == "exact" or not (directory / name).exists():
        return None
    try:
        backend = FaissBackend.read(directory / name, config)
    except (RuntimeError, OSError):  # a damaged structure file: rebuilt from the embeddings (the truth)
        return None
    return backend if backend.count == meta["count"] else None


NORM_ARRAYS = ("penalty", "best_score", "best_row")


def saved_norms(directory: Path, meta: dict[str, Any], model: JointModel) -> dict[str, GalleryNorm]:
    """The saved QB-Norm statistics of this generation, per query side whose bank the model still has with
    the same β; anything missing, damaged or stale is recomputed on first use instead."""
    name = meta["files"].get("hubness")
    if not name or not (directory / name).is_file():
        return {}
    try:
        with np.load(directory / name, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # damaged: recomputed from the embeddings
        return {}
    if float(arrays.get("beta", np.nan)) != model.hubness.beta:
        return {}
    norms = {}
    for side, bank in model.query_bank.items():
        parts = [arrays.get(f"{side}.{key}") for key in NORM_ARRAYS]
        if any(p is None for p in parts) or len(parts[0]) != meta["count"] or len(parts[1]) != len(bank) \
                or not all(np.isfinite(p).all() for p in parts[:2]) or not (0 <= parts[2]).all() \
                or not (parts[2] < max(1, meta["count"])).all():
            continue  # damaged or of another index: recomputed from the embeddings
        norms[side] = GalleryNorm(*(torch.from_numpy(np.asarray(p)) for p in parts), beta=model.hubness.beta)
    return norms


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META
    if not path.exists():
        raise BadIndexError(f"{directory}: not a latentfuse index ({META} is missing); "
                          "build one with `latentfuse index --model MODEL --data SOURCE --out DIR`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadIndexError(f"{path}: not valid JSON ({exc}); the index is damaged, rebuild it with --overwrite") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BadIndexError(f"{path}: format {found!r}, expected {FORMAT!r}")
    for key, kind in META_FIELDS.items():
        parts, value = key.split("."), meta
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadIndexError(f"{path}: field {key!r} must be {kind.__name__ if isinstance(kind, type) else 'set'}, "
                                f"got {value!r:.60}; the index is damaged, rebuild it with --overwrite")
    files = meta["files"]
    for name in (files["embeddings"], files["items"], files.get("faiss") or "x", files.get("hubness") or "x"):
        if not isinstance(name, str) or Path(name).name != name:  # a file of this folder, nothing else
            raise BadIndexError(f"{path}: file name {name!r} points outside the index folder")
    return meta


META_FIELDS: dict[str, Any] = {"model.path": str, "model.fingerprint": str, "side": str, "count": int,
                               "generation": int, "backend": dict, "files.embeddings": str, "files.items": str}


def _newest_generation(directory: Path) -> int:
    numbers = [int(p.stem.split("-")[-1]) for p in directory.glob("embeddings-*.npy")
               if p.stem.split("-")[-1].isdigit()]
    return max(numbers, default=0)
