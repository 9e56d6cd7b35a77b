"""Join a split's pairs with the cached features of both sides into in-memory tensors for training."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import StoreConfig
from ..data import Source, SplitData
from ..encoders import Encoder
from ..errors import DataError
from .extract import get_features
from .feature_store import Features


@dataclass
class PairedFeatures:
    """Float32 feature matrices of both sides plus (row_a, row_b) index pairs.

    Items dropped during extraction (``--skip-bad``) simply have no row, so pairs touching them vanish.
    """

    sides: tuple[str, str]
    x: dict[str, torch.Tensor]
    ids: dict[str, list[str]]
    pairs: np.ndarray  # int64 (P, 2)

    @classmethod
    def build(cls, data: SplitData, features: dict[str, Features]) -> "PairedFeatures":
        a, b = (side.name for side in data.sides)
        rows_a, rows_b = features[a].index(), features[b].index()
        pairs = np.array([(rows_a[i], rows_b[j]) for i, j in data.pairs if i in rows_a and j in rows_b],
                         dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            raise DataError(f"split {data.split!r} has no usable pairs between {a!r} and {b!r}")
        x = {s: torch.from_numpy(np.asarray(features[s].array, dtype=np.float32)) for s in (a, b)}
        return cls(sides=(a, b), x=x, ids={s: features[s].ids for s in (a, b)}, pairs=pairs)

    def dims(self) -> dict[str, int]:
        return {side: int(t.shape[1]) for side, t in self.x.items()}

    def __len__(self) -> int:
        return len(self.pairs)


def paired_features(source: Source, data: SplitData, encoders: dict[str, Encoder], store: StoreConfig, *,
                    parent: SplitData | None = None, skip_bad: bool = False,
                    progress: bool = True) -> PairedFeatures:
    """Both sides of ``data`` through ``get_features`` (data side → encoder), joined by the split's pairs."""
    features = {side: get_features(source, data, side, encoder, store, parent=parent, skip_bad=skip_bad,
                                   progress=progress)
                for side, encoder in encoders.items()}
    return PairedFeatures.build(data, features)
