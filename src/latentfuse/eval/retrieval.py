"""Scoring a model on paired data, one way for every caller: :func:`score` embeds both sides (the model's
chunked encode loop), builds each direction's QB-Norm from the model's query bank (``hub_norms``) and asks
the method for its report — the run's own test report, ``eval --task retrieval``, ``robustness`` (clean and
corrupted) and ``classification`` all call it, so they cannot disagree. The metrics themselves live in
``latentfuse.metrics`` (re-exported here) so methods can score their own validation.

Recall@K both directions and median rank, computed in chunks.

Protocol (standard for Flickr8k/COCO): every caption is a query against all images (text→image, one
correct image); every image is a query against all captions (image→text), correct at K if *any* of its
captions is in the top K. The similarity matrix is never held whole: queries are scored a chunk at a time,
so memory is O(chunk × gallery).

Scores may be normalised against a query bank first (QB-Norm, ``hubness.py``): ``norms`` gives each
direction's :class:`~latentfuse.hubness.GalleryNorm` (``hub_norms`` builds them from a model's bank).
"""
from __future__ import annotations

from typing import Any

from ..hubness import GalleryNorm
from ..metrics import (DIRECTION_NAMES, KS, best_ranks, recall_summary, retrieval_metrics,  # noqa: F401
                       retrieval_report)
from ..methods.base import embed, validate  # noqa: F401  (the trainer's retrieval hook, a method's own)
from ..model import JointModel
from ..store import PairedFeatures
from .features import same_width


def score(model: JointModel, data: PairedFeatures, *, dataset: str, split: str, sides: dict[str, str] | None = None,
          hubness: str = "", train_seconds: float | None = None, task: str = "retrieval") -> dict[str, Any]:
    """The method's report on ``data`` (cached inputs per data side; ``sides`` maps data side → model side,
    default the same names): a joint embedding ranked under the model's QB-Norm (``hubness``: its setting,
    or none | is | dis), which the report names; a classifier's own report."""
    method = model.method
    if not method.embeds:
        return method.report(data, dataset=dataset, split=split, train_seconds=train_seconds)
    sides = sides or {side: side for side in data.sides}
    a, b = data.sides
    embeddings = {a: model.encode_features(sides[a], data.x[a]), b: model.encode_features(sides[b], data.x[b])}
    same_width(task, **embeddings)
    return method.report(data, dataset=dataset, split=split, train_seconds=train_seconds, embeddings=embeddings,
                         norms=hub_norms(model, sides[a], sides[b], embeddings[a], embeddings[b], hubness),
                         hubness=model.hubness_summary(hubness))


def hub_norms(model: JointModel, side_a: str, side_b: str, embed_a: Any, embed_b: Any,
              norm: str = "") -> dict[str, GalleryNorm | None]:
    """Each direction's QB-Norm of the other side's gallery under the model's query bank (``norm``: the
    model's setting, or none | is | dis): ``a2b`` = queries of ``side_a`` against the ``embed_b`` gallery."""
    return {"a2b": model.gallery_norm(side_a, embed_b, norm), "b2a": model.gallery_norm(side_b, embed_a, norm)}


