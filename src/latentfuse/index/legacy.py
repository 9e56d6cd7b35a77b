"""Indexes written before the LanceDB table (format ``latentfuse.index/1``): generation files
``embeddings-NNNNNN.npy`` (float32 rows) + ``items-NNNNNN.jsonl`` (one record a line), named by ``index.json``.

``convert`` moves every row, with its stored embedding (no re-encoding), into a new item table, then writes the
new ``index.json`` (the commit: a conversion killed before it leaves the old index as it was, and the next
``latentfuse index`` starts it again), then removes the generation files. Only ``latentfuse index`` converts;
``search`` and ``serve`` refuse an old index with the command that converts it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..config import RuntimeConfig
from .backends import BackendConfig
from .collection import META, BadIndexError, Index, Record, recorded_model

GENERATION_FILE = re.compile(r"(embeddings|items|faiss|hubness)-\d{6}\.(npy|jsonl|index|npz)")


def convert(directory: Path, model: str | Path | None = None, runtime: RuntimeConfig | None = None) -> Index:
    directory = Path(directory)
    meta = json.loads((directory / META).read_text(encoding="utf-8"))
    files = meta.get("files") or {}
    try:
        embeddings = np.load(directory / Path(files["embeddings"]).name, allow_pickle=False)
        lines = (directory / Path(files["items"]).name).read_text(encoding="utf-8").splitlines()
        records = [Record(**json.loads(line)) for line in lines]
    except (KeyError, OSError, ValueError, TypeError, EOFError) as exc:
        raise BadIndexError(f"{directory}: an old-format index whose files cannot be read ({exc}); rebuild it "
                            "with --overwrite") from None
    if embeddings.ndim != 2 or len(embeddings) != len(records):
        raise BadIndexError(f"{directory}: an old-format index with {len(records)} item rows and embeddings "
                            f"{embeddings.shape}; rebuild it with --overwrite")
    model_path = str(model) if model is not None else recorded_model(meta, directory)
    index = Index.create(directory, model_path, meta.get("side"))
    if index.model.fingerprint != meta.get("model", {}).get("fingerprint"):
        raise BadIndexError(f"{directory} was built with model fingerprint {meta.get('model', {}).get('fingerprint')}, "
                            f"but {model_path} has fingerprint {index.model.fingerprint}; pass --model PATH to the "
                            "model it was built with")
    runtime = runtime or RuntimeConfig()
    index.model.to(runtime.device, runtime.precision, runtime.backend)
    old = meta.get("backend") or {}
    index.backend_config = BackendConfig(**{k: v for k, v in old.items() if k in ("kind", "nprobe", "ef_search")})
    index.skipped, index.encoded_with = list(meta.get("skipped", [])), str(meta.get("encoded_with", ""))
    index.append(np.asarray(embeddings, dtype=np.float32), records)
    index.save()
    for stale in directory.iterdir():
        if GENERATION_FILE.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    return index
