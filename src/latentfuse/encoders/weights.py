"""Where weights live and what identifies them: local folders, the Hugging Face cache, file digests.

Identities feed encoder fingerprints. Hashing is done once per file version (path, size, mtime) per
process, so asking an encoder for its fingerprint twice costs nothing the second time.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from ..utils.hashing import digest, file_digest
from .base import EncoderUnavailableError

# Files torch never reads (docs, other frameworks' exports); skipped when hashing a model folder.
_IGNORED_SUFFIXES = {".md", ".lock", ".onnx", ".h5", ".msgpack", ".ot", ".tflite", ".xml"}
_IGNORED_DIRS = {"onnx", "openvino", "tf", "flax"}


def weights_identity(path: str | Path) -> str:
    """Content identity of a weights file or model folder.

    A folder inside the Hugging Face cache (``.../snapshots/<commit>``) is named by its commit, which
    is free; any other folder by the digests of its files (weights, config, tokenizer).
    """
    path = Path(path)
    if _is_hf_snapshot(path):
        return f"hf-commit:{path.name}"
    path = path.resolve()
    if path.is_file():
        return _cached_file_digest(str(path), *_stat_key(path))
    files = sorted(p for p in path.rglob("*") if p.is_file() and _counts(p.relative_to(path)))
    if not files:
        raise EncoderUnavailableError(f"{path}: no model files in this folder")
    return digest([(p.relative_to(path).as_posix(), _cached_file_digest(str(p), *_stat_key(p)))
                   for p in files])


def _counts(relative: Path) -> bool:
    parts = relative.parts
    return (relative.suffix.lower() not in _IGNORED_SUFFIXES and parts[0] not in _IGNORED_DIRS
            and not any(part.startswith(".") for part in parts) and not relative.name.startswith("LICENSE"))


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=256)
def _cached_file_digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def _is_hf_snapshot(path: Path) -> bool:
    return path.parent.name == "snapshots" and len(path.name) == 40 and path.parent.parent.name.startswith(
        "models--")


def resolve_model_dir(id_or_path: str, needs: str = "config.json") -> Path:
    """A local folder, or a Hugging Face hub id already in the local cache, as a folder path.

    Never downloads: encoders run offline, so a missing model is a clear error instead of a hang.
    """
    local = Path(id_or_path).expanduser()
    if local.is_dir():
        if not (local / needs).is_file():
            raise EncoderUnavailableError(f"{local}: not a model folder (no {needs})")
        return local.resolve()
    if local.exists() or id_or_path.startswith((".", "/", "~")) or id_or_path.count("/") > 1:
        raise EncoderUnavailableError(f"{id_or_path}: no such model folder")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(id_or_path, local_files_only=True))
    except Exception as exc:  # not cached, bad id, or huggingface_hub missing: all mean "not here"
        raise EncoderUnavailableError(
            f"{id_or_path!r} is neither a local folder nor in the Hugging Face cache; encoders never "
            f"download, so fetch it first (`huggingface-cli download {id_or_path}`) or pass a folder"
        ) from exc
    if not (folder / needs).is_file():
        raise EncoderUnavailableError(f"{id_or_path}: cached snapshot {folder} has no {needs}")
    return folder


def read_json(path: Path) -> Any:
    """A JSON file of a model folder; unreadable means the model is unusable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EncoderUnavailableError(f"{path}: cannot read ({exc})") from exc


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading bars and notices (the feature store owns progress output)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
