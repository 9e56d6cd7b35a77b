"""Cross-modal retrieval in eval: a model's QB-Norm per direction (``hub_norms``); the metrics themselves live
in ``latentfuse.metrics`` (re-exported here) so methods can score their own validation.

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

def hub_norms(model: JointModel, side_a: str, side_b: str, embed_a: Any, embed_b: Any,
              norm: str = "") -> dict[str, GalleryNorm | None]:
    """Each direction's QB-Norm of the other side's gallery under the model's query bank (``norm``: the
    model's setting, or none | is | dis): ``a2b`` = queries of ``side_a`` against the ``embed_b`` gallery."""
    return {"a2b": model.gallery_norm(side_a, embed_b, norm), "b2a": model.gallery_norm(side_b, embed_a, norm)}


