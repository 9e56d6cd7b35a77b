"""``st:<id-or-path>``: a sentence-transformers model, run by sentence-transformers itself (CPU).

Use it for models whose module stack ``hf:`` does not reproduce (Dense layers, prompts, custom
pooling). Output is what ``SentenceTransformer.encode`` returns: normalised only if the model ends in
a Normalize module.
"""
from __future__ import annotations

import importlib.util
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from . import ENCODERS
from .base import (Encoder, EncoderUnavailableError, Lazy, Placed, check_texts, empty, init_torch,
                   make_fingerprint)
from .text import hidden_size
from .weights import quiet_transformers, read_json, resolve_model_dir, weights_identity

_INSTALL = "st: encoders need sentence-transformers: pip install latentfuse[st]"
_POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                  "lasttoken")


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers folder (or cached hub id); see the module docstring."""

    modality = "text"
    uses_runtime = True

    def __init__(self, model: str, *, batch_size: int = 32) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise EncoderUnavailableError(_INSTALL)
        self.name = f"st:{model}"
        self.model_dir = resolve_model_dir(model, needs="modules.json")
        self.hub_id = "" if Path(model).expanduser().exists() else model  # a Hub id names a base_model
        self.batch_size = batch_size
        self._dim = declared_dim(self.model_dir)
        self._model = Lazy(self._load)
        self._placed = Placed()

    @property
    def dim(self) -> int:  # type: ignore[override]
        """Read from the folder's module configs; only an unusual module stack needs the model loaded."""
        if self._dim is None:
            model = self._model()
            get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(get())
        return self._dim

    @cached_property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, weights_identity(self.model_dir), {},
                                ("sentence-transformers", "transformers"))

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        init_torch()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderUnavailableError(_INSTALL) from exc
        with quiet_transformers():
            return SentenceTransformer(str(self.model_dir), device=self.runtime.device)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), dim), exactly as the model's own ``encode`` gives it."""
        texts = check_texts(batch)
        if not texts:
            return empty(self.dim)
        model = self._placed(self._model(), self.runtime)
        with self.runtime.autocast():
            vectors = model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                   convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def declared_dim(model_dir: Path) -> int | None:
    """Output width from modules.json and each module's config, or None when it cannot be told."""
    dim: int | None = None
    for module in read_json(model_dir / "modules.json"):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        folder = model_dir / module.get("path", "")
        if kind == "Transformer":
            dim = hidden_size(read_json(folder / "config.json"))
        elif kind == "Pooling":
            config = read_json(folder / "config.json")
            modes = sum(bool(config.get(f"pooling_mode_{mode}")) for mode in _POOLING_MODES)
            width = config.get("word_embedding_dimension", dim)
            if not isinstance(width, int):
                return None
            dim = width * max(modes, 1)
        elif kind == "Dense":
            dim = read_json(folder / "config.json").get("out_features")
        elif kind != "Normalize":
            return None
    return dim


@ENCODERS.register("st", help="st:ID-OR-FOLDER sentence-transformers model (pip install latentfuse[st])")
def st(arg: str | None = None) -> SentenceTransformerEncoder:
    if not arg:
        raise ConfigError("st: needs a model id or folder, e.g. st:/models/all-MiniLM-L6-v2")
    return SentenceTransformerEncoder(arg)
