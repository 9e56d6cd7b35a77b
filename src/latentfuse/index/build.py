"""``latentfuse index``: create an index, or grow an existing one, from a data source."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import RuntimeConfig, StoreConfig
from ..data import build_source
from ..data.heldout import cut_like_training
from ..errors import ConfigError
from ..utils.outdir import output_dir
from .backends import KINDS, BackendConfig
from .collection import META, Index, LegacyIndexError
from .legacy import convert


def build_index(model: str | Path | None, data: str, out: str | Path, *, splits: list[str] | None = None,
                side: str | None = None, kind: str | None = None, nprobe: int | None = None, refine: int | None = None,
                store: StoreConfig | None = None, skip_bad: bool = False, progress: bool = True,
                rebuild: bool = False, overwrite: bool = False, update: bool = False,
                delete: list[str] | None = None, delete_where: str = "", dtype: str | None = None,
                runtime: RuntimeConfig | None = None) -> tuple[Index, int]:
    """Open ``out`` (same model required; an old-format index is converted) or create it, delete the rows named
    by ``delete`` (ids) / ``delete_where`` (a filter), add the new items of ``data``'s ``splits`` (``all`` = every
    split; none = its only split; ``update``: every item, replacing the rows of ids it has), save;
    → (index, rows written).

    ``out`` follows the output-directory rule: an index is grown; a folder holding anything else is refused
    unless ``overwrite``, which builds a new index beside it and swaps it in when complete.
    """
    out = Path(out)
    runtime = runtime or RuntimeConfig()
    if overwrite and model is None:
        raise ConfigError("--overwrite builds a new index: pass --model MODEL too")
    if not data and (update or splits):
        raise ConfigError("--update and --split need --data SOURCE")
    source = build_source(data, skip_bad=skip_bad) if data else None
    with output_dir(out, "index", None, overwrite=overwrite, known_files=(META,)) as folder:
        index = _open_or_create(folder, model, side, runtime, dtype)
        if kind is not None or nprobe is not None or refine is not None:
            if kind is not None and kind not in KINDS:
                raise ConfigError(f"--index-kind {kind!r}: choose one of {', '.join(KINDS)}")
            index.use_backend(dataclasses.replace(index.backend_config, kind=kind or index.backend_config.kind,
                                                  nprobe=nprobe or index.backend_config.nprobe,
                                                  refine=refine or index.backend_config.refine))
        if delete or delete_where:
            index.delete(delete or [], delete_where or None)
        if source is None:  # a conversion, a deletion, another kind or --rebuild: nothing to add
            index.save(rebuild=rebuild)
            index.directory = out
            return index, 0
        if splits:  # train / val / test of the table the model was trained on: the cut it was trained with
            source = cut_like_training(source, splits[0], index.model.meta.get("trained_on", ""),
                                       index.model.meta.get("training", {}).get("held_out_cut"))
        chosen = source.expand_splits(splits) if splits else [None]
        index.model.to(runtime.device, runtime.precision, runtime.backend)
        added = sum(index.add_source(source, split, store, skip_bad=skip_bad, progress=progress, update=update)
                    for split in chosen)
        index.save(rebuild=rebuild)  # rebuild: retrain the ANN structure on everything
    index.directory = out
    return index, added


def _open_or_create(folder: Path, model: str | Path | None, side: str | None, runtime: RuntimeConfig,
                    dtype: str | None) -> Index:
    if (folder / META).exists():
        try:
            index = Index.open(folder, model)
        except LegacyIndexError:
            index = convert(folder, model, runtime)
        if side and side != index.side:
            raise ConfigError(f"{folder} indexes side {index.side!r}; --side {side} needs a new index")
        if dtype and dtype != index.backend_config.dtype:
            raise ConfigError(f"{folder} stores {index.backend_config.dtype} embeddings; --index-dtype {dtype} "
                              "needs a new index (--overwrite)")
        return index
    if model is None:
        raise ConfigError(f"{folder} is not an index yet: pass --model MODEL to create it")
    return Index.create(folder, model, side, BackendConfig(dtype=dtype or "float32"))
