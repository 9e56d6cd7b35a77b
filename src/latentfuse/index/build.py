"""``latentfuse index``: create an index, or grow an existing one, from a data source."""
from __future__ import annotations

from pathlib import Path

from ..config import StoreConfig
from ..data import build_source
from ..errors import ConfigError
from .backends import KINDS, BackendConfig, build_backend
from ..utils.outdir import output_dir
from .collection import META, Index


def build_index(model: str | Path | None, data: str, out: str | Path, *, split: str | None = None,
                side: str | None = None, backend: str | None = None, nprobe: int | None = None,
                store: StoreConfig | None = None, skip_bad: bool = False, progress: bool = True,
                rebuild: bool = False, overwrite: bool = False, device: str = "auto",
                precision: str = "fp32", encoder_backend: str = "auto") -> tuple[Index, int]:
    """Open ``out`` (same model required) or create it, add ``data``'s new items, save; → (index, added).

    ``out`` follows the output-directory rule: an index is grown; a folder holding anything else is refused
    unless ``overwrite``, which builds a new index beside it and swaps it in when complete.
    """
    out = Path(out)
    if overwrite and model is None:
        raise ConfigError("--overwrite builds a new index: pass --model MODEL too")
    with output_dir(out, "index", None, overwrite=overwrite, known_files=(META,)) as folder:
        index = _open_or_create(folder, model, side)
        index.model.to(device, precision, encoder_backend)
        if backend is not None or nprobe is not None:
            if backend is not None and backend not in KINDS:
                raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(KINDS)}")
            current = index.backend_config
            index.use_backend(BackendConfig(backend or current.kind,
                                            nprobe if nprobe is not None else current.nprobe,
                                            current.m, current.ef_search))
        added = index.add_source(build_source(data, skip_bad=skip_bad), split, store, skip_bad=skip_bad,
                                 progress=progress)
        if rebuild:  # retrain the faiss structure on everything (items added later only join trained cells)
            index.backend = build_backend(index.embeddings, index.backend_config)
        index.save()
    index.directory = out
    return index, added


def _open_or_create(folder: Path, model: str | Path | None, side: str | None) -> Index:
    if (folder / META).exists():
        index = Index.open(folder, model)
        if side and side != index.side:
            raise ConfigError(f"{folder} indexes side {index.side!r}; --side {side} needs a new index")
        return index
    if model is None:
        raise ConfigError(f"{folder} is not an index yet: pass --model MODEL to create it")
    return Index.create(folder, model, side)
