"""Hubness-aware retrieval: query-bank normalisation (QB-Norm; Bogolin et al., CVPR 2022).

In a joint space some gallery items ("hubs") sit close to very many queries and crowd the top of every
ranking. QB-Norm measures how strongly each gallery item attracts a *bank* of typical queries (e.g. the
training captions) and divides that out with an inverted softmax: a query's score for gallery item j
becomes ``exp(β·s_j) / Σ_bank exp(β·s_bank,j)``. Ranking needs only the per-row order, so we work in the
log domain: ``β·s_j − penalty_j`` with ``penalty_j = logsumexp_b(β·s_bank,j)`` (no overflow at any β).

*Dynamic* inverted softmax (DIS, the paper's default) normalises only the queries whose raw top-1 is in the
*activation set* — the gallery items that are the top-1 of at least one bank query (the hubs); the other
queries keep their raw ranking, so normalisation cannot hurt a query no hub competes for.

Follows the official ioanacroi/qb-norm ``dynamic_inverted_softmax.py`` (``get_retrieved_videos``,
``get_index_to_normalize``, ``qb_norm``). Deviations, each with its reason:

* log-domain scores instead of ``exp(β·s)`` divided by a sum: the same order per row, and no overflow
  (their β = 20 on unit vectors is safe in float64, not in float32 at larger β);
* the activation set is the top-1 of the bank queries (their ``k`` = 1, the default they report), and it is
  kept as each bank query's best (score, row), so an index that grows only compares the new rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GalleryNorm:
    """What a query bank says about one gallery: each item's hub penalty and whether it is a hub."""

    penalty: torch.Tensor  # (n_gallery,) float32: logsumexp over the bank of β · similarity
    best_score: torch.Tensor  # (n_bank,) float32: each bank query's best raw similarity in the gallery
    best_row: torch.Tensor  # (n_bank,) int64: the gallery row of that best match
    beta: float
    dynamic: bool = True
    query_hub: torch.Tensor | None = None
    """(n_queries,) bool, DIS only: whether each query's raw top-1 is a hub, decided outside when this gallery is
    a filtered part of a larger one (the decision is the whole gallery's, so a filter never changes a score)."""

    @property
    def active(self) -> torch.Tensor:
        """(n_gallery,) bool: the activation set, the items some bank query ranks first."""
        mask = torch.zeros(len(self.penalty), dtype=torch.bool)
        mask[self.best_row[self.best_row >= 0]] = True
        return mask

    def rescore(self, scores: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised scores of queries against the gallery: ``scores`` (n_queries, n) raw similarities to all
        items, or to the gallery ``rows`` given (a candidate list per query, best raw score first). Only the
        order within a row is meaningful; un-normalised rows (DIS) are ``β·s``, normalised ones ``β·s − p``."""
        penalty = self.penalty[rows] if rows is not None else self.penalty[None, :]
        adjusted = self.beta * scores - penalty
        if not self.dynamic:
            return adjusted
        if self.query_hub is not None:
            hub = self.query_hub
        else:
            hub = self.active[rows[:, 0] if rows is not None else scores.argmax(dim=1)]
        return torch.where(hub[:, None], adjusted, self.beta * scores)

    def grown(self, bank: torch.Tensor, new_gallery: torch.Tensor, chunk: int = 4096) -> "GalleryNorm":
        """This norm for the gallery with ``new_gallery`` rows appended (the same ``bank``): only the new
        rows are compared with the bank."""
        extra = gallery_norm(bank, new_gallery, self.beta, self.dynamic, chunk)
        better = extra.best_score > self.best_score
        return GalleryNorm(torch.cat([self.penalty, extra.penalty]),
                           torch.where(better, extra.best_score, self.best_score),
                           torch.where(better, extra.best_row + len(self.penalty), self.best_row),
                           self.beta, self.dynamic)


def gallery_norm(bank: torch.Tensor, gallery: torch.Tensor, beta: float, dynamic: bool = True,
                 chunk: int = 4096) -> GalleryNorm:
    """The QB-Norm statistics of ``gallery`` (n, d) under ``bank`` (b, d) (both L2-normalised), a chunk of
    bank queries at a time, so memory is O(chunk × n)."""
    if len(bank) == 0:
        raise ValueError("the query bank is empty")
    bank, gallery = bank.float(), gallery.float()
    penalty = torch.full((len(gallery),), float("-inf"))
    best_score = torch.full((len(bank),), float("-inf"))
    best_row = torch.full((len(bank),), -1, dtype=torch.long)
    if len(gallery) == 0:
        return GalleryNorm(penalty, best_score, best_row, float(beta), dynamic)
    for start in range(0, len(bank), chunk):
        sims = bank[start:start + chunk] @ gallery.T  # (chunk, n)
        penalty = torch.logaddexp(penalty, torch.logsumexp(beta * sims, dim=0))
        score, row = sims.max(dim=1)
        best_score[start:start + chunk], best_row[start:start + chunk] = score, row
    return GalleryNorm(penalty, best_score, best_row, float(beta), dynamic)
