"""Shared helpers for benchmarks: where the shared data lives, and skipping cleanly when it is absent."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "runs" / "bench"


def flickr8k_dir() -> Path | None:
    path = SHARED_DATA / "flickr8k"
    if not (path / "captions.tsv").exists():
        print(f"skip: Flickr8k not found at {path}", file=sys.stderr)
        return None
    return path
