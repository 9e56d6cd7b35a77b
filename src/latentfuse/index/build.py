"""``latentfuse index``: create an index, or grow an existing one, from a data source."""
from __future__ import annotations

from pathlib import Path

from ..config import StoreConfig
from ..data import build_source
from ..errors import ConfigError
from .backends import KINDS, BackendConfig, build_backend
from .collection import META, Index


def build_index(model: str | Path | None, data: str, out: str | Path, *, split: str | None = None,
                side: str | None = None, backend: str | None = None, nprobe: int | None = None,
                store: StoreConfig | None = None, skip_bad: bool = False, progress: bool = True,
                rebuild: bool = False) -> tuple[Index, int]:
    """Open ``out`` (same model required) or create it, add ``data``'s new items, save; → (index, added)."""
    out = Path(out)
    if (out / META).exists():
        index = Index.open(out, model)
        if side and side != index.side:
            raise ConfigError(f"{out} indexes side {index.side!r}; --side {side} needs a new index")
    elif model is None:
        raise ConfigError(f"{out} is not an index yet: pass --model MODEL to create it")
    else:
        index = Index.create(out, model, side)
    if backend is not None or nprobe is not None:
        if backend is not None and backend not in KINDS:
            raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(KINDS)}")
        current = index.backend_config
        index.use_backend(BackendConfig(backend or current.kind, nprobe if nprobe is not None else current.nprobe,
                                        current.m, current.ef_search))
    added = index.add_source(build_source(data, skip_bad=skip_bad), split, store, skip_bad=skip_bad,
                             progress=progress)
    if rebuild:  # retrain the faiss structure on everything (items added later only join trained cells)
        index.backend = build_backend(index.embeddings, index.backend_config)
    index.save()
    return index, added
