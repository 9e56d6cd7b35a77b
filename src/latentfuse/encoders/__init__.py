"""Frozen encoders: a registry of names (``efficientnet-lite0``, ``minilm-l6``, ``hf:ID``...) → Encoder."""
from __future__ import annotations

from functools import lru_cache

from ..registry import Registry
from .base import Encoder

ENCODERS: Registry[Encoder] = Registry("encoder")


@lru_cache(maxsize=8)
def build_encoder(spec: str) -> Encoder:
    """Build (once per process) the encoder a spec names; weights load lazily on first encode."""
    _import_builtin_encoders()
    return ENCODERS.build(spec)


def _import_builtin_encoders() -> None:
    from . import e5, efficientnet, hf, minilm, st, timm_  # noqa: F401  (registration side effects)


__all__ = ["ENCODERS", "Encoder", "build_encoder"]
