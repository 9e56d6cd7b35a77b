"""On-disk layout of cached features, and the manifest that says what is complete.

    ROOT/<dataset>-<dataset fp>/<split>/<side>/<encoder>-<encoder fp>/
        manifest.json          source of truth: which shards are committed, skipped ids, dims, dtype
        shard-00000.npy        float16 (rows, dim), memory-mappable
        shard-00000.ids.json   the ids of those rows, in order

A shard is written to a temp file and renamed into place, *then* listed in the manifest (also written
atomically). A run killed at any instant therefore leaves only whole shards that the manifest lists, plus
perhaps an orphan file the next run overwrites: resuming never loses or duplicates rows.
"""
from __future__ import annotations

import errno
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import DataError
from ..utils import atomic
from ..utils.hashing import digest

class StoreError(DataError):
    """The feature cache cannot be written (read-only, permission denied, disk full) or is damaged."""


@contextmanager
def writable(directory: Path) -> Iterator[None]:
    """Turn a failed cache write into one line that names the folder and says what to do."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk (or quota) holding it is full"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "it is read-only or not writable by this user"
        else:
            why = exc.strerror or str(exc)
        raise StoreError(f"cannot write to the feature cache at {directory}: {why}. Finished shards are kept; "
                         "free space and re-run to resume, or point --store / $LATENTFUSE_CACHE elsewhere") from None


FORMAT_VERSION = 1
STORE_DTYPE = np.float16


@dataclass
class Features:
    """Rows of one (dataset, split, side, encoder): ``array[i]`` is the feature of ``ids[i]``."""

    ids: list[str]
    array: np.ndarray  # float16, (len(ids), dim); memory-mapped when the store holds one shard
    manifest: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def index(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.ids)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:48] or "x"


class FeatureStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def directory(self, dataset: str, dataset_fp: str, split: str, side: str,
                  encoder: str, encoder_fp: str) -> Path:
        return (self.root / f"{_slug(dataset)}-{dataset_fp[:12]}" / _slug(split) / _slug(side)
                / f"{_slug(encoder)}-{encoder_fp[:12]}")

    def writer(self, directory: Path, header: dict[str, Any], item_ids: list[str],
               shard_size: int) -> "ShardWriter":
        return ShardWriter(directory, header, item_ids, shard_size)

    @staticmethod
    def read(directory: Path) -> Features:
        """Load a complete feature set; raises DataError if the manifest says it is unfinished."""
        manifest, ids, shards = read_shards(directory, "features", "latentfuse extract")
        arrays = [values for values, _ in shards]
        dim = int(manifest["dim"])
        if not arrays:
            array = np.zeros((0, dim), dtype=STORE_DTYPE)
        elif len(arrays) == 1:
            array = arrays[0]
        else:
            array = np.concatenate(arrays, axis=0)
        if len(ids) != array.shape[0]:
            raise DataError(f"{directory}: {len(ids)} ids but {array.shape[0]} rows; delete it and re-extract")
        return Features(ids=ids, array=array, manifest=manifest)


def read_shards(directory: Path, what: str, command: str, offsets: bool = False
                ) -> tuple[dict[str, Any], list[str], list[tuple[np.ndarray, np.ndarray | None]]]:
    """A complete folder's manifest, ids, and per shard its memory-mapped values (and offsets, for token
    features); an unfinished or damaged folder is an error naming it and what to run."""
    manifest = read_manifest(directory)
    if manifest is None or not manifest.get("complete"):
        raise StoreError(f"{directory}: {what} are not complete (run `{command}`)")
    ids: list[str] = []
    shards = []
    for shard in manifest["shards"]:
        try:
            values = np.load(directory / shard["file"], mmap_mode="r")
            starts = np.load(directory / shard["offsets_file"]) if offsets else None
            ids.extend(json.loads((directory / shard["ids_file"]).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{directory}: shard {shard.get('file', '?')} is damaged or missing ({exc}); "
                             "delete the folder to re-extract") from None
        shards.append((values, starts))
    return manifest, ids, shards


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / "manifest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:  # cannot happen with atomic writes, unless edited by hand
        raise DataError(f"{path}: not valid JSON ({exc}); delete the folder to re-extract") from exc


class ShardWriter:
    """Commits fixed-size shards of a planned item list; knows which shards a previous run finished."""

    def __init__(self, directory: Path, header: dict[str, Any], item_ids: list[str], shard_size: int) -> None:
        self.directory = directory
        self.shard_size = shard_size
        plan = {"items_digest": digest(item_ids), "n_items": len(item_ids), "shard_size": shard_size}
        previous = read_manifest(directory)
        if previous is not None and all(previous.get(k) == v for k, v in plan.items()):
            self.manifest = previous  # resume: keep its committed shards
        else:
            self.manifest = {"format": FORMAT_VERSION, **header, **plan, "dtype": np.dtype(STORE_DTYPE).name,
                             "shards": [], "skipped": [], "count": 0, "complete": False}

    @property
    def n_shards(self) -> int:
        return -(-self.manifest["n_items"] // self.shard_size)

    def done(self) -> set[int]:
        return {shard["index"] for shard in self.manifest["shards"]}

    def commit(self, index: int, ids: list[str], array: np.ndarray, skipped: list[tuple[str, str]],
               offsets: np.ndarray | None = None) -> None:
        """Write one shard atomically, then record it in the manifest (atomically).

        ``offsets`` (token features): ``array`` holds every item's tokens back to back, item ``i`` being
        rows ``offsets[i]:offsets[i + 1]``; written beside it as ``shard-NNNNN.offsets.npy``."""
        rows = len(offsets) - 1 if offsets is not None else array.shape[0]
        if array.ndim != 2 or rows != len(ids) or (offsets is not None and int(offsets[-1]) != array.shape[0]):
            raise ValueError(f"shard {index}: {len(ids)} ids but array of shape {array.shape}")
        name = f"shard-{index:05d}"
        record = {"index": index, "file": f"{name}.npy", "ids_file": f"{name}.ids.json", "rows": len(ids)}
        with writable(self.directory):
            with atomic.atomic_path(self.directory / f"{name}.npy") as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array, dtype=STORE_DTYPE))
            if offsets is not None:
                record["offsets_file"] = f"{name}.offsets.npy"
                with atomic.atomic_path(self.directory / record["offsets_file"]) as tmp:
                    with open(tmp, "wb") as handle:
                        np.save(handle, np.asarray(offsets, dtype=np.int64))
            atomic.write_text(self.directory / f"{name}.ids.json", json.dumps(ids))
        shards = [s for s in self.manifest["shards"] if s["index"] != index]
        shards.append(record)
        self.manifest["shards"] = sorted(shards, key=lambda s: s["index"])
        self.manifest["skipped"] += [{"id": i, "reason": r, "shard": index} for i, r in skipped]
        self.manifest["count"] = sum(s["rows"] for s in self.manifest["shards"])
        if array.shape[0]:
            self.manifest["dim"] = int(array.shape[1])
        self._write_manifest()

    def finish(self, load_skipped: list[tuple[str, str]], dim: int) -> None:
        self.manifest["skipped_at_load"] = [{"id": i, "reason": r} for i, r in load_skipped]
        self.manifest.setdefault("dim", dim)
        self.manifest["complete"] = len(self.done()) == self.n_shards
        self._write_manifest()

    def _write_manifest(self) -> None:
        with writable(self.directory):
            atomic.write_json(self.directory / "manifest.json", self.manifest)
