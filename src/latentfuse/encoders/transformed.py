"""An encoder run on transformed inputs: corrupted ones (robustness) or augmented views (distillation).

``TransformedEncoder(base, tag, transform)`` applies ``transform`` to each raw item, then runs ``base``. Its
fingerprint is a digest of the base's and the tag, so the feature store caches the transformed features apart
from the clean ones (and from every other tag), and a second run encodes nothing. A transform that draws random
numbers seeds them from the item (``corrupt.item_rng``): the same item is transformed the same way in every batch
and every run.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import numpy as np

from .base import Encoder, Tap


class TransformedEncoder(Encoder):
    """``base`` run on ``transform(item)`` for each item; cached apart from ``base`` by its fingerprint."""

    def __init__(self, base: Encoder, tag: str, transform: Callable[[Any], Any]) -> None:
        self.base, self.tag, self.transform = base, tag, transform
        self.name, self.modality, self.dim = base.name, base.modality, base.dim
        self.uses_runtime, self.runtime = base.uses_runtime, base.runtime  # it runs the base encoder

    @property
    def fingerprint(self) -> str:
        """A digest of the base fingerprint and the tag (the store keys folders by a prefix of it)."""
        return hashlib.blake2b(f"{self.base.fingerprint}+{self.tag}".encode(), digest_size=8).hexdigest()

    def transformed(self, batch: Sequence[Any]) -> list[Any]:
        return [self.transform(item) for item in batch]

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return self.base.encode(self.transformed(batch))

    def taps(self) -> dict[str, Tap]:
        return self.base.taps()

    def encode_taps(self, batch: Sequence[Any], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        return self.base.encode_taps(self.transformed(batch), taps)
