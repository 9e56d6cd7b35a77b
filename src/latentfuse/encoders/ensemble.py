"""Encoder ensembles: ``efficientnet-lite0+efficientnet-lite2`` is one side embedded by several frozen encoders.

Each member's feature is L2-normalised, then they are concatenated: members differ wildly in scale (raw CNN
activations vs unit-norm sentence vectors) and width, and without it the larger one would drown the other
in a head's input LayerNorm. The heads see one wider feature and need no change.

Token taps (MMFuser, token LightCRL, DynMM's depth experts) are the *first* member's: a method that reads
taps of an ``efficientnet-lite0+efficientnet-lite2`` side runs lite0 alone, up to the tap it reads, so a
token method works with the default encoders; the other members serve pooled features.

The feature store caches each member on its own (``store.extract.get_features`` joins them), so an ensemble
reuses what a single-encoder run already extracted, and a member shared by two ensembles runs once. Images
are decoded once per batch and handed to every member.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..specs import ENSEMBLE as SEPARATOR, members
from ..utils.hashing import digest
from .base import Encoder, Tap
from .images import load_image

FORMAT = "ensemble/1"  # part of the fingerprint: a change to how members are joined invalidates caches


class Ensemble(Encoder):
    """Several encoders of one modality as one; ``parts`` are built encoders (on the same runtime)."""

    def __init__(self, parts: Sequence[Encoder]) -> None:
        if len(parts) < 2:
            raise ConfigError(f"an encoder ensemble needs two or more members joined by {SEPARATOR!r}, got "
                              f"{[p.name for p in parts]}")
        modalities = {p.modality for p in parts}
        if len(modalities) != 1:
            listing = ", ".join(f"{p.name} ({p.modality})" for p in parts)
            raise ConfigError(f"ensemble {SEPARATOR.join(p.name for p in parts)!r}: all members must embed one "
                              f"modality, got {listing}")
        self.parts = tuple(parts)
        self.name = SEPARATOR.join(p.name for p in parts)
        self.modality = modalities.pop()
        self.dim = sum(p.dim for p in parts)
        costs = [p.cost_per_item for p in parts]
        self.cost_per_item = None if None in costs else float(sum(costs))  # type: ignore[arg-type]
        self.runtime = parts[0].runtime

    @property
    def fingerprint(self) -> str:
        return digest(FORMAT, [p.fingerprint for p in self.parts])

    def provenance(self) -> list[tuple[str, str]]:
        return [entry for part in self.parts for entry in part.provenance()]

    @property
    def cache_key(self) -> str:
        return digest(FORMAT, [p.cache_key for p in self.parts])

    def join(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The members' features of the same items (in member order) → the ensemble's, float32."""
        out = []
        for array in arrays:
            array = np.asarray(array, dtype=np.float32)
            out.append(array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out, axis=1)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        items = self.prepare(batch)
        return self.join([part.encode(items) for part in self.parts])

    def taps(self) -> dict[str, Tap]:
        return self.parts[0].taps()

    def encode_taps(self, batch: Sequence[Any], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        return self.parts[0].encode_taps(batch, taps)

    def prepare(self, batch: Sequence[Any]) -> list[Any]:
        """Images decoded once (to RGB PIL images, which every member takes); texts checked."""
        if self.modality == "image":
            return [load_image(item, index) for index, item in enumerate(batch)]
        return super().prepare(batch)


def is_ensemble(spec: str) -> bool:
    return SEPARATOR in spec


def member_specs(spec: str) -> list[str]:
    """``a+b`` → ``["a", "b"]`` (a single encoder's spec → ``[spec]``), or a ConfigError for an empty member
    (``a+``)."""
    return members(spec)
