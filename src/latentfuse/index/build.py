"""``latentfuse index``: create an index, or grow an existing one, from a data source."""
from __future__ import annotations

from pathlib import Path

from ..config import RuntimeConfig, StoreConfig
from ..data import build_source
from ..data.heldout import cut_like_training
from ..errors import ConfigError
from .backends import KINDS, BackendConfig, build_backend
from ..utils.outdir import output_dir
from .collection import META, Index


def build_index(model: str | Path | None, data: str, out: str | Path, *, splits: list[str] | None = None,
                side: str | None = None, kind: str | None = None, nprobe: int | None = None,
                store: StoreConfig | None = None, skip_bad: bool = False, progress: bool = True,
                rebuild: bool = False, overwrite: bool = False,
                runtime: RuntimeConfig | None = None) -> tuple[Index, int]:
    """Open ``out`` (same model required) or create it, add the new items of ``data``'s ``splits`` (``all`` =
    every split; none = its only split), save; → (index, added).

    ``out`` follows the output-directory rule: an index is grown; a folder holding anything else is refused
    unless ``overwrite``, which builds a new index beside it and swaps it in when complete.
    """
    out = Path(out)
    runtime = runtime or RuntimeConfig()
    if overwrite and model is None:
        raise ConfigError("--overwrite builds a new index: pass --model MODEL too")
    source = build_source(data, skip_bad=skip_bad)
    with output_dir(out, "index", None, overwrite=overwrite, known_files=(META,)) as folder:
        index = _open_or_create(folder, model, side)
        if splits:  # train / val / test of the table the model was trained on: the cut it was trained with
            source = cut_like_training(source, splits[0], index.model.meta.get("trained_on", ""),
                                       index.model.meta.get("training", {}).get("held_out_cut"))
        chosen = source.expand_splits(splits) if splits else [None]
        index.model.to(runtime.device, runtime.precision, runtime.backend)
        if kind is not None or nprobe is not None:
            if kind is not None and kind not in KINDS:
                raise ConfigError(f"--index-kind {kind!r}: choose one of {', '.join(KINDS)}")
            current = index.backend_config
            index.use_backend(BackendConfig(kind or current.kind, nprobe if nprobe is not None else current.nprobe,
                                            current.m, current.ef_search))
        added = sum(index.add_source(source, split, store, skip_bad=skip_bad, progress=progress)
                    for split in chosen)
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
