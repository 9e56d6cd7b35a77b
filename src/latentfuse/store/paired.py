"""Join a split's pairs with the cached features of both sides, for training and validation.

A side's inputs are either a pooled feature matrix (a float32 tensor, in memory; or, with ``train.stream``,
``StreamedRows`` read from the store's shards a batch at a time) or token taps
(``TapInputs``: memory-mapped, padded per batch with a mask). ``take``/``rows_of`` hide which, so the trainer
and the evaluators slice both the same way, and a method receives, per side, a tensor or
``{tap: (tokens, mask)}``.

``targets`` holds what a method learns *towards* but never reads as input — per side, one row per input
row (a teacher's embeddings for distillation). The trainer hands a batch's rows of them to the method as
``batch["targets"][side]``; evaluation never sees them, so a model is scored on its inputs alone.

``labels`` is the multi-hot target of each *pair* over ``label_names`` (from ``SplitData.tags``): what a
classifier of both sides (DynMM) is trained and scored on; ``batch["labels"]`` carries a batch's rows.
"""
from __future__ import annotations

import dataclasses
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
from .streamed import StreamedRows
from .tokens import TapInputs, get_tokens

SideInputs = Union[torch.Tensor, TapInputs, StreamedRows]


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
    labels: torch.Tensor | None = None  # (P, len(label_names)) float32 multi-hot, one row per pair
    label_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labels is not None and tuple(self.labels.shape) != (len(self.pairs), len(self.label_names)):
            raise DataError(f"labels must be (pairs, label names) = ({len(self.pairs)}, {len(self.label_names)}); "
                            f"got {tuple(self.labels.shape)}")
        for side, target in self.targets.items():
            if side not in self.x or len(target) != len(self.x[side]):
                raise DataError(f"targets of side {side!r} must have one row per input row of a side "
                                f"{list(self.x)}; got {len(target)} rows")

    @classmethod
    def build(cls, data: SplitData, features: dict[str, Features | TapInputs]) -> "PairedFeatures":
        a, b = (side.name for side in data.sides)
        rows_a, rows_b = (_index(features[s].ids) for s in (a, b))
        kept = [(i, j) for i, j in data.pairs if i in rows_a and j in rows_b]
        pairs = np.array([(rows_a[i], rows_b[j]) for i, j in kept], dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            raise DataError(f"split {data.split!r} has no usable pairs between {a!r} and {b!r}")
        x = {s: features[s] if isinstance(features[s], TapInputs) else features[s].array
             if isinstance(features[s].array, StreamedRows)
             else torch.from_numpy(np.asarray(features[s].array, dtype=np.float32)) for s in (a, b)}
        labels = multi_hot([data.tags.get(pair, ()) for pair in kept], data.tag_names) if data.tag_names else None
        return cls(sides=(a, b), x=x, ids={s: features[s].ids for s in (a, b)}, pairs=pairs, labels=labels,
                   label_names=data.tag_names)

    def placed(self, device: torch.device) -> "PairedFeatures":
        """These features for training on ``device``: pooled matrices, targets and labels moved there once
        when they fit in half its free memory, else pinned on the host so each batch copies without
        blocking; token taps stay memory-mapped (their batches are padded on the host, then moved)."""
        if device.type == "cpu":
            return self
        tensors = [x for x in (*self.x.values(), *self.targets.values(), self.labels) if isinstance(x, torch.Tensor)]
        size = sum(t.numel() * t.element_size() for t in tensors)
        fits = device.type != "cuda" or size < 0.5 * torch.cuda.mem_get_info(device)[0]

        def place(t: torch.Tensor) -> torch.Tensor:
            return t.to(device) if fits else t.pin_memory()

        return dataclasses.replace(
            self, x={s: place(x) if isinstance(x, torch.Tensor) else x for s, x in self.x.items()},
            targets={s: place(t) for s, t in self.targets.items()},
            labels=None if self.labels is None else place(self.labels))

    @property
    def streamed(self) -> bool:
        """Whether a side's rows are read from the store's shards a batch at a time (``train.stream``)."""
        return any(isinstance(x, StreamedRows) for x in self.x.values())

    def dims(self) -> dict[str, Any]:
        """Per side: the pooled width, or {tap: channels} for token inputs."""
        return {side: x.dims() if isinstance(x, TapInputs) else int(x.shape[1]) for side, x in self.x.items()}

    def take(self, side: str, rows: Any) -> Any:
        """A batch of one side's inputs: a tensor, or {tap: (tokens, mask)}."""
        return take(self.x[side], rows)

    def batch(self, positions: torch.Tensor) -> dict[str, Any]:
        """What a method's ``loss`` receives for the pairs at ``positions`` (indices into ``pairs``): each
        side's inputs, ``"items"`` ({side: the row of each pair's item on that side}), plus ``"targets"`` ({side: rows of its targets}) and ``"labels"`` (the pairs'
        multi-hot rows) when the data has them."""
        a, b = self.sides
        pair_rows = torch.from_numpy(self.pairs)[positions]
        rows = {a: pair_rows[:, 0], b: pair_rows[:, 1]}
        out: dict[str, Any] = {side: self.take(side, rows[side]) for side in (a, b)}
        out["items"] = rows  # which item each row is, per side: duplicates (one image, five captions) share one
        if self.targets:
            out["targets"] = {side: target[rows[side]] for side, target in self.targets.items()}
        if self.labels is not None:
            out["labels"] = self.labels[positions]
        return out

    def __len__(self) -> int:
        return len(self.pairs)


def multi_hot(label_sets: Sequence[Sequence[str]], names: Sequence[str]) -> torch.Tensor:
    """(len(label_sets), len(names)) float32: 1 where a set holds the name; a name outside ``names`` is an error."""
    column = {name: k for k, name in enumerate(names)}
    out = torch.zeros(len(label_sets), len(names))
    for row, labels in enumerate(label_sets):
        for label in labels:
            if label not in column:
                raise DataError(f"label {label!r} is not in the label vocabulary ({', '.join(names)})")
            out[row, column[label]] = 1.0
    return out


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
                    skip_bad: bool = False, progress: bool = True,
                    taps: dict[str, list[str]] | None = None, stream: bool = False) -> PairedFeatures:
    """Both sides of ``data`` (data side → encoder), joined by the split's pairs: pooled features through
    ``get_features`` (left in the store's shards with ``stream``), or, for a side named in ``taps``, those token
    taps through ``get_tokens``."""
    taps = taps or {}
    features: dict[str, Features | TapInputs] = {}
    for side, encoder in encoders.items():
        if taps.get(side):
            features[side] = TapInputs(get_tokens(source, data, side, encoder, taps[side], store,
                                                  skip_bad=skip_bad, progress=progress))
        else:
            features[side] = get_features(source, data, side, encoder, store, skip_bad=skip_bad,
                                          progress=progress, stream=stream)
    return PairedFeatures.build(data, features)
