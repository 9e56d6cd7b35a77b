"""Join a split's pairs with the cached features of both sides, for training and validation.

A side's inputs are either a pooled feature matrix (a float32 tensor, in memory) or token taps
(``TapInputs``: memory-mapped, padded per batch with a mask). ``take``/``rows_of`` hide which, so the trainer
and the evaluators slice both the same way, and a method receives, per side, a tensor or
``{tap: (tokens, mask)}``.

``targets`` holds what a method learns *towards* but never reads as input — per side, one row per input
row (a teacher's embeddings for distillation). The trainer hands a batch's rows of them to the method as
``batch["targets"][side]``; evaluation never sees them, so a model is scored on its inputs alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import torch

from ..config import StoreConfig
from ..data import Source, SplitData
from ..encoders import Encoder
from ..errors import DataError
from .extract import get_features
from .feature_store import Features
from .tokens import TapInputs, get_tokens

SideInputs = Union[torch.Tensor, TapInputs]


@dataclass
class PairedFeatures:
    """Float32 feature matrices of both sides plus (row_a, row_b) index pairs.

    Items dropped during extraction (``--skip-bad``) simply have no row, so pairs touching them vanish.
    """

    sides: tuple[str, str]
    x: dict[str, SideInputs]
    ids: dict[str, list[str]]
    pairs: np.ndarray  # int64 (P, 2)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # side → (rows of x[side], ...) float32

    def __post_init__(self) -> None:
        for side, target in self.targets.items():
            if side not in self.x or len(target) != len(self.x[side]):
                raise DataError(f"targets of side {side!r} must have one row per input row of a side "
                                f"{list(self.x)}; got {len(target)} rows")

    @classmethod
    def build(cls, data: SplitData, features: dict[str, Features | TapInputs]) -> "PairedFeatures":
        a, b = (side.name for side in data.sides)
        rows_a, rows_b = (_index(features[s].ids) for s in (a, b))
        pairs = np.array([(rows_a[i], rows_b[j]) for i, j in data.pairs if i in rows_a and j in rows_b],
                         dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            raise DataError(f"split {data.split!r} has no usable pairs between {a!r} and {b!r}")
        x = {s: features[s] if isinstance(features[s], TapInputs)
             else torch.from_numpy(np.asarray(features[s].array, dtype=np.float32)) for s in (a, b)}
        return cls(sides=(a, b), x=x, ids={s: features[s].ids for s in (a, b)}, pairs=pairs)

    def dims(self) -> dict[str, Any]:
        """Per side: the pooled width, or {tap: channels} for token inputs."""
        return {side: x.dims() if isinstance(x, TapInputs) else int(x.shape[1]) for side, x in self.x.items()}

    def take(self, side: str, rows: Any) -> Any:
        """A batch of one side's inputs: a tensor, or {tap: (tokens, mask)}."""
        return take(self.x[side], rows)

    def batch(self, pair_rows: torch.Tensor) -> dict[str, Any]:
        """What a method's ``loss`` receives for these pairs: each side's inputs, plus ``"targets"``
        ({side: rows of its targets}) when the data has targets."""
        a, b = self.sides
        rows = {a: pair_rows[:, 0], b: pair_rows[:, 1]}
        out: dict[str, Any] = {side: self.take(side, rows[side]) for side in (a, b)}
        if self.targets:
            out["targets"] = {side: target[rows[side]] for side, target in self.targets.items()}
        return out

    def __len__(self) -> int:
        return len(self.pairs)


def take(x: SideInputs, rows: Any) -> Any:
    """Rows of a side's inputs (an index array or a slice): a tensor, or {tap: (tokens, mask)}."""
    if isinstance(x, TapInputs):
        if isinstance(rows, slice):
            rows = range(*rows.indices(len(x)))
        return x.take(np.asarray(rows, dtype=np.int64).reshape(-1))
    return x[rows]


def length(x: SideInputs) -> int:
    return len(x)


def _index(ids: Sequence[str]) -> dict[str, int]:
    return {item_id: row for row, item_id in enumerate(ids)}


def paired_features(source: Source, data: SplitData, encoders: dict[str, Encoder], store: StoreConfig, *,
                    parent: SplitData | None = None, skip_bad: bool = False, progress: bool = True,
                    taps: dict[str, list[str]] | None = None) -> PairedFeatures:
    """Both sides of ``data`` (data side → encoder), joined by the split's pairs: pooled features through
    ``get_features``, or, for a side named in ``taps``, those token taps through ``get_tokens``."""
    taps = taps or {}
    features: dict[str, Features | TapInputs] = {}
    for side, encoder in encoders.items():
        if taps.get(side):
            features[side] = TapInputs(get_tokens(source, data, side, encoder, taps[side], store, parent=parent,
                                                  skip_bad=skip_bad, progress=progress))
        else:
            features[side] = get_features(source, data, side, encoder, store, parent=parent, skip_bad=skip_bad,
                                          progress=progress)
    return PairedFeatures.build(data, features)
