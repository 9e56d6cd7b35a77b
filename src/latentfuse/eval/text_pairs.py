"""Both sentences of each pair of a text–text split, embedded by the model side(s) an option names.

Which model side encodes which sentence (the ``side`` option of ``sts`` and ``pair-classification``):

* ``""`` (default): the model's first text side encodes both sentences — for an image–text model its
  text side, for a frozen encoder that encoder, for a text–text model its first text side (``text_a``);
* a side name, e.g. ``text_b``: that side encodes both sentences;
* ``cross``: sentence1 through the first text side, sentence2 through the second — the score then
  measures how well the two aligned text spaces agree (needs a model with two text sides).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Source, SplitData
from ..errors import ConfigError
from ..model import JointModel
from .features import embed, same_width
from .tasks import Context

CROSS = "cross"


@dataclass
class EmbeddedPairs:
    ids: list[str]  # pair (row) ids, in split order
    a: np.ndarray  # (n, dim) sentence1 embeddings
    b: np.ndarray  # (n, dim) sentence2 embeddings
    sides: tuple[str, str]  # model sides that embedded sentence1, sentence2


def model_sides(model: JointModel, option: str, task: str) -> tuple[str, str]:
    """(side for sentence1, side for sentence2) from the ``side`` option (see the module docstring)."""
    if option != CROSS:
        side = model.side_for("text", option, purpose=task)
        return side, side
    first = model.side_for("text", purpose=task)
    second = model.side_for("text", other_than=first, purpose=task)
    if second == first:
        raise ConfigError(f"{task}: side=cross needs a model with two text sides; this one has only {first!r}")
    return first, second


def embed_pairs(model: JointModel, source: Source, data: SplitData, option: str, task: str,
                context: Context) -> EmbeddedPairs:
    """Embeddings of both sentences of every pair whose two items survived extraction."""
    first, second = (s.name for s in data.sides)
    if any(s.modality != "text" for s in data.sides):
        raise ConfigError(f"{task}: {source.spec} is not a text–text set (sides "
                          f"{[f'{s.name} ({s.modality})' for s in data.sides]})")
    side_a, side_b = model_sides(model, option, task)
    kwargs = dict(skip_bad=context.skip_bad, progress=context.progress)
    emb_a = embed(model, side_a, source, data, first, context.store, **kwargs)
    emb_b = embed(model, side_b, source, data, second, context.store, **kwargs)
    same_width(task, **{f"sentence1 ({side_a})": emb_a.x, f"sentence2 ({side_b})": emb_b.x})
    rows_a, rows_b = emb_a.rows(), emb_b.rows()
    kept = [(i, j) for i, j in data.pairs if i in rows_a and j in rows_b]
    if not kept:
        raise ConfigError(f"{task}: split {data.split!r} of {source.spec} has no pairs left to score")
    return EmbeddedPairs([i for i, _ in kept], emb_a.x[[rows_a[i] for i, _ in kept]],
                         emb_b.x[[rows_b[j] for _, j in kept]], (side_a, side_b))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays (one score per pair, never an n×n matrix)."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.einsum("ij,ij->i", a64, b64) / np.maximum(norms, 1e-12)
