"""What the feature cache holds (``latentfuse cache``) and removing what nothing uses (``latentfuse cache gc``).

A row is *referenced* when the last read of some (data, split, side, encoder[, tap]) used it: every
``get_features`` / ``get_tokens`` call records the keys it read (``FeatureStore.remember``), replacing that
usage's earlier record. So after a caption is edited, its old row is referenced by nothing; the images it
shares with the new table stay referenced. ``gc`` keeps referenced rows (rewriting a shard that holds
both kinds, atomically, before deleting it), and removes unreferenced shards, files a killed run left
(older than ``ORPHAN_AGE_S``, so a running extraction's files are never touched) and folders of the
older per-dataset layout.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .feature_store import KEYS_SUFFIX, LAYOUT, Shelf, old_folders
from .tokens import ragged

ORPHAN_AGE_S = 3600


@dataclass
class ShelfStats:
    name: str  # "<encoder>-<key>" or "<encoder>-<key>/tap-<name>"
    items: int
    referenced: int
    bytes: int


@dataclass
class CacheStats:
    root: Path
    shelves: list[ShelfStats] = field(default_factory=list)
    usages: list[dict[str, str]] = field(default_factory=list)
    old_bytes: int = 0


def shelves(root: Path) -> list[Path]:
    """Every shelf folder: each encoder's, and each of its taps'."""
    base = root / LAYOUT
    if not base.is_dir():
        return []
    out = []
    for encoder in sorted(p for p in base.iterdir() if p.is_dir()):
        out.append(encoder)
        out += sorted(p for p in encoder.iterdir() if p.is_dir() and p.name.startswith("tap-"))
    return out


def referenced(root: Path) -> tuple[dict[str, set[str]], list[dict[str, str]]]:
    """(shelf path relative to root → the keys some usage read last, the usage records)."""
    keys: dict[str, set[str]] = {}
    usages = []
    for record in sorted((root / "refs").glob("*.json")) if (root / "refs").is_dir() else []:
        try:
            usage = json.loads(record.read_text())
            used = np.load(record.parent / (record.name[:-len(".json")] + KEYS_SUFFIX))
        except (OSError, ValueError):
            continue  # a damaged record references nothing; gc removes it
        usages.append(usage)
        keys.setdefault(usage["shelf"], set()).update(used.tolist())
    return keys, usages


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def stats(root: Path) -> CacheStats:
    used, usages = referenced(root)
    out = CacheStats(root, usages=usages, old_bytes=sum(_size(list(p.rglob("*"))) for p in old_folders(root)))
    for directory in shelves(root):
        shelf = Shelf(directory)
        name = directory.relative_to(root / LAYOUT).as_posix()
        wanted = used.get(directory.relative_to(root).as_posix(), set())
        out.shelves.append(ShelfStats(name, len(shelf), shelf.index.count_in(wanted),
                                      _size([p for p in directory.iterdir() if p.is_file()])))
    return out


@dataclass
class Collected:
    shards_removed: int = 0
    shards_rewritten: int = 0
    rows_removed: int = 0
    bytes_freed: int = 0
    old_folders: int = 0


def collect(root: Path, dry_run: bool = False) -> Collected:
    """Remove what nothing references (see the module docstring); ``dry_run`` only counts it."""
    used, _ = referenced(root)
    done = Collected()
    before = _size(list(root.rglob("*")))
    for directory in shelves(root):
        wanted = used.get(directory.relative_to(root).as_posix(), set())
        _collect_shelf(Shelf(directory, tokens=directory.name.startswith("tap-")), wanted, dry_run, done)
        _orphans(directory, dry_run, done)
    for folder in old_folders(root):
        done.old_folders += 1
        done.bytes_freed += _size(list(folder.rglob("*")))  # exact once measured below
        if not dry_run:
            shutil.rmtree(folder)
    if not dry_run:
        done.bytes_freed = before - _size(list(root.rglob("*")))
    return done


def _collect_shelf(shelf: Shelf, wanted: set[str], dry_run: bool, done: Collected) -> None:
    for position, shard in enumerate(list(shelf.shards)):
        keys = shelf.shard_keys(position)
        keep = [row for row, key in enumerate(keys) if key in wanted]
        bad = {k: r for k, r in shard.bad.items() if k in wanted}
        if len(keep) == len(keys) and len(bad) == len(shard.bad):
            continue
        files = _files(shelf.directory, shard.name)
        before = _size(files)
        if keep or bad:
            done.shards_rewritten += 1
            if not dry_run:
                values, kept = shelf.values(position), [keys[r] for r in keep]
                if shelf.tokens:
                    tokens, starts = ragged(shelf.token_rows(kept), values.shape[1])
                    shelf.commit(kept, np.asarray(tokens), bad, offsets=starts)
                else:
                    shelf.commit(kept, np.asarray(values[keep]), bad)
        else:
            done.shards_removed += 1
        done.rows_removed += len(keys) - len(keep)
        if not dry_run:
            _remove(files, first=shelf.directory / f"{shard.name}{KEYS_SUFFIX}")
        done.bytes_freed += before * (len(keys) - len(keep)) // max(1, len(keys))  # an estimate; see collect


def _files(directory: Path, name: str) -> list[Path]:
    return [p for p in directory.glob(f"{name}.*") if p.is_file()]


def _remove(files: list[Path], first: Path) -> None:
    """Un-commit (the keys file) first, so a kill half-way leaves an orphan, never a shard without values."""
    first.unlink(missing_ok=True)
    for path in files:
        path.unlink(missing_ok=True)


def _orphans(directory: Path, dry_run: bool, done: Collected) -> None:
    """Files of uncommitted shards (no keys file) and temporary files, left by killed runs."""
    committed = {p.name[:-len(KEYS_SUFFIX)] for p in directory.glob(f"*{KEYS_SUFFIX}")}
    old = time.time() - ORPHAN_AGE_S
    for path in directory.iterdir():
        if not path.is_file() or path.stat().st_mtime > old:
            continue
        if path.name.endswith(".tmp") or path.name.split(".")[0] not in committed:
            done.bytes_freed += path.stat().st_size
            if not dry_run:
                path.unlink(missing_ok=True)
