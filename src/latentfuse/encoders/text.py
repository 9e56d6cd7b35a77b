"""Text through a Hugging Face transformer (AutoTokenizer + AutoModel) with mean or CLS pooling.

Speed on CPU comes from padding less: a batch is tokenised once, sorted by token count, run in chunks
of similar lengths (each padded only to its own longest text), and put back in the caller's order.
"""
from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..utils.runtime import inference
from .base import (Encoder, EncoderUnavailableError, Lazy, Placed, Tap, check_texts, empty,
                   init_torch, make_fingerprint)
from .onnx_backend import GraphSpec, OnnxSession, Sessions, wrap
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
        vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
        self._vocab = vocab if isinstance(vocab, int) and vocab > 1 else 100  # for the ONNX check's token ids
        self._tokenizer = Lazy(self._load_tokenizer)
        self._model = Lazy(self._load_model)
        self._placed = Placed()
        self._sessions = Sessions()
        # A fast tokenizer is not safe to call from two threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        preprocess = {"pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}
        return make_fingerprint(self.name, weights_identity(self.model_dir), preprocess,
                                ("transformers", "tokenizers"))

    def _load_tokenizer(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(self.model_dir))

    def _load_model(self) -> Any:
        """The eval-mode torch model (on the CPU): what the torch backend runs and the ONNX one exports."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        init_torch()
        from transformers import AutoModel

        with quiet_transformers():
            model = AutoModel.from_pretrained(str(self.model_dir))
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return model

    def _ready(self) -> tuple[Any, Any]:
        """(tokenizer, eval-mode model on the runtime's device)."""
        return self._tokenizer(), self._placed(self._model(), self.runtime)

    def _tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]] | None, int]:
        """(token ids, token types or None, pad id) of each text, unpadded, truncated to ``max_length``."""
        tokenizer = self._tokenizer()
        with self._tokenizer_lock:
            tokens = tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        return tokens["input_ids"], tokens.get("token_type_ids"), tokenizer.pad_token_id or 0

    def _chunks(self, texts: list[str]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], list[int]]]:
        """(positions in the batch, padded int64 inputs, true lengths) per chunk of similar lengths."""
        ids, types, pad_id = self._tokenize(texts)
        for group in length_chunks([len(row) for row in ids], self.chunk_size, self.sort_by_length):
            rows = [ids[i] for i in group]
            yield group, _pad(rows, pad_id, None if types is None else [types[i] for i in group],
                              self._pad_to), [len(row) for row in rows]

    # ---------------------------------------------------------------- ONNX Runtime backend
    def _session(self, outputs: tuple[str, ...], inputs: tuple[str, ...]) -> OnnxSession | None:
        """The ONNX Runtime session of the pooled output (``("pooled",)``) or of these layers' states, when
        the runtime's backend is onnx / onnx-int8 and the graph passed its check; None: run on torch."""
        if not self.runtime.uses_onnx:
            return None
        return self._sessions.get((outputs, inputs), lambda: self._graph(outputs, inputs), self.runtime)

    def _graph(self, outputs: tuple[str, ...], inputs: tuple[str, ...]) -> GraphSpec:
        def forward(model: Any, *tensors: Any) -> Any:
            named = dict(zip(inputs, tensors))
            if outputs == ("pooled",):
                return self._forward(model, named)
            hidden = self._hidden_states(model, named)
            return tuple(hidden[int(tap.removeprefix("layer"))] for tap in outputs)

        def example(variant: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(variant)
            low = min(100, self._vocab // 2)
            rows = [list(rng.integers(low, self._vocab, size=n)) for n in ((7, 12), (5, 9, 3))[variant]]
            padded = _pad(rows, 0, [[0] * len(r) for r in rows], self._pad_to)
            return {name: padded[name] for name in inputs}

        axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
        return GraphSpec(self.name, self.fingerprint, inputs, outputs, axes,
                         module=lambda: wrap(self._model(), forward), example=example)

    def _run(self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> list[Any]:
        """One padded chunk through the runtime's backend: the pooled (n, dim) array, or the layers'
        (n, tokens, width) states, as float32 numpy."""
        import torch

        session = self._session(outputs, tuple(inputs))
        if session is not None:
            return session(inputs)
        tensors = self.runtime.to({k: torch.from_numpy(v) for k, v in inputs.items()})
        _, model = self._ready()
        with inference(self.runtime):
            if outputs == ("pooled",):
                return [self._forward(model, tensors).float().cpu().numpy()]
            hidden = self._hidden_states(model, tensors)
            return [hidden[int(tap.removeprefix("layer"))].float().cpu().numpy() for tap in outputs]

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), dim): pooled (and, if configured, L2-normalised) token states."""
        texts = check_texts(batch)
        if not texts:
            return empty(self.dim)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for group, inputs, _ in self._chunks(texts):
            out[group] = self._run(inputs, ("pooled",))[0]
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
        taps = tuple(self.check_taps(taps))
        texts = check_texts(batch)
        out: dict[str, list[Any]] = {tap: [None] * len(texts) for tap in taps}
        if not texts:
            return out
        for group, inputs, lengths in self._chunks(texts):
            for tap, states in zip(taps, self._run(inputs, taps)):
                for row, item in enumerate(group):
                    out[tap][item] = np.ascontiguousarray(states[row, :lengths[row]], dtype=np.float32)
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


def _pad(rows: list[list[int]], pad_id: int, types: list[list[int]] | None, width: int = 0) -> dict[str, np.ndarray]:
    """Right-pad token rows to the longest one, or to ``width`` (CLS stays at position 0), as int64 arrays."""
    width = max(width, max(len(row) for row in rows))
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        input_ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    if types is not None:
        token_types = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(types):
            token_types[r, :len(row)] = row
        inputs["token_type_ids"] = token_types
    return inputs
