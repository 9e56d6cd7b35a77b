"""Text through a Hugging Face transformer (AutoTokenizer + AutoModel) with mean or CLS pooling.

Speed on CPU comes from padding less: a batch is tokenised once, sorted by token count, run in chunks
of similar lengths (each padded only to its own longest text), and put back in the caller's order.
"""
from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..utils.runtime import inference
from .base import (Encoder, EncoderUnavailableError, Lazy, Placed, Tap, check_texts, empty,
                   init_torch, make_fingerprint)
from .weights import quiet_transformers, read_json, resolve_model_dir, weights_identity

POOLINGS = ("mean", "cls")




def length_chunks(lengths: Sequence[int], chunk: int, sort: bool = True) -> list[np.ndarray]:
    """Index groups of at most ``chunk`` items; longest first when sorting, so padding stays small."""
    order = np.argsort(-np.asarray(lengths), kind="stable") if sort else np.arange(len(lengths))
    return [order[start:start + chunk] for start in range(0, len(order), chunk)]


def hidden_size(config: dict[str, Any]) -> int | None:
    """Width of a transformer's hidden states, from its config.json (no transformers import)."""
    for key in ("hidden_size", "d_model", "dim", "n_embd", "embed_dim"):
        if isinstance(config.get(key), int):
            return config[key]
    sizes = config.get("hidden_sizes")
    return sizes[-1] if isinstance(sizes, list) and sizes else None


class TransformerTextEncoder(Encoder):
    """Pooled last hidden states of a Hugging Face text encoder.

    ``pooling``: ``mean`` (attention-masked average of token states, the sentence-transformers default)
    or ``cls`` (the first token's state). ``normalize`` L2-normalises the result. Texts longer than
    ``max_length`` tokens are truncated.
    """

    modality = "text"
    uses_runtime = True

    def __init__(self, model: str | Path, *, name: str, pooling: str = "mean", normalize: bool = False,
                 max_length: int = 256, chunk_size: int = 32, sort_by_length: bool = True,
                 dim: int | None = None) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r}: expected one of {POOLINGS}")
        self.name = name
        self.model_dir = resolve_model_dir(str(model))
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length
        self.chunk_size, self.sort_by_length = chunk_size, sort_by_length
        config = read_json(self.model_dir / "config.json")
        dim = dim or hidden_size(config)
        if dim is None:
            raise EncoderUnavailableError(f"{self.model_dir}/config.json: cannot tell the hidden size")
        self.dim = dim
        layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
        self._layers = layers if isinstance(layers, int) else None  # read once: taps() is on the encode path
        self._loaded = Lazy(self._load)
        self._placed = Placed()
        # A fast tokenizer is not safe to call from two threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        preprocess = {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}
        return make_fingerprint(self.name, weights_identity(self.model_dir), preprocess,
                                ("transformers", "tokenizers"))

    def _load(self) -> tuple[Any, Any]:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        init_torch()
        from transformers import AutoModel, AutoTokenizer

        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
            model = AutoModel.from_pretrained(str(self.model_dir))
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return tokenizer, model

    def _ready(self) -> tuple[Any, Any]:
        """(tokenizer, eval-mode model on the runtime's device)."""
        tokenizer, model = self._loaded()
        return tokenizer, self._placed(model, self.runtime)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), dim): pooled (and, if configured, L2-normalised) token states."""
        texts = check_texts(batch)
        if not texts:
            return empty(self.dim)
        tokenizer, model = self._ready()
        with self._tokenizer_lock:
            tokens = tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        ids = tokens["input_ids"]
        types = tokens.get("token_type_ids")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with inference(self.runtime):
            for group in length_chunks([len(row) for row in ids], self.chunk_size, self.sort_by_length):
                inputs = self.runtime.to(_pad([ids[i] for i in group], tokenizer.pad_token_id or 0,
                                              None if types is None else [types[i] for i in group], self._pad_to))
                out[group] = self._forward(model, inputs).float().cpu().numpy()
        return out

    _pad_to = 0  # pad every row to this many tokens (0 = to the longest of its chunk)

    def taps(self) -> dict[str, Tap]:
        """``layer0`` (the embeddings) … ``layerN`` (the last hidden states): one token per word piece,
        special tokens included, padding never stored."""
        if self._layers is None:
            return {}
        return {f"layer{i}": Tap(f"layer{i}", self._tap_width, None,
                                 "token embeddings" if i == 0 else f"hidden states after block {i}")
                for i in range(self._layers + 1)}

    @property
    def _tap_width(self) -> int:
        """Channels of the hidden states (a tower with a projection has another width than ``dim``)."""
        return self.dim

    def _hidden_states(self, model: Any, inputs: dict[str, Any]) -> Any:
        """Every layer's hidden states for one padded chunk (embeddings first)."""
        return model(**inputs, output_hidden_states=True).hidden_states

    def encode_taps(self, batch: Sequence[Any], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Hidden states of the requested layers, (length, dim) float32 per text, its true length."""
        taps = self.check_taps(taps)
        texts = check_texts(batch)
        out: dict[str, list[Any]] = {tap: [None] * len(texts) for tap in taps}
        if not texts:
            return out
        tokenizer, model = self._ready()
        with self._tokenizer_lock:
            tokens = tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        ids, types = tokens["input_ids"], tokens.get("token_type_ids")
        layers = {tap: int(tap.removeprefix("layer")) for tap in taps}
        with inference(self.runtime):
            for group in length_chunks([len(row) for row in ids], self.chunk_size, self.sort_by_length):
                inputs = self.runtime.to(_pad([ids[i] for i in group], tokenizer.pad_token_id or 0,
                                              None if types is None else [types[i] for i in group], self._pad_to))
                hidden = self._hidden_states(model, inputs)
                for tap, layer in layers.items():
                    states = hidden[layer].float().cpu().numpy()
                    for row, item in enumerate(group):
                        out[tap][item] = np.ascontiguousarray(states[row, :len(ids[item])])
        return out

    def _forward(self, model: Any, inputs: dict[str, Any]) -> Any:
        """(n, dim) tensor for one padded chunk: pooled last hidden states."""
        return self._pool(model(**inputs).last_hidden_state, inputs["attention_mask"])

    def _pool(self, hidden: Any, mask: Any) -> Any:
        import torch

        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def _pad(rows: list[list[int]], pad_id: int, types: list[list[int]] | None, width: int = 0) -> dict[str, Any]:
    """Right-pad token rows to the longest one, or to ``width`` (CLS stays at position 0), as torch tensors."""
    import torch

    width = max(width, max(len(row) for row in rows))
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        input_ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    inputs = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        token_types = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(types):
            token_types[r, :len(row)] = row
        inputs["token_type_ids"] = torch.from_numpy(token_types)
    return inputs
