"""Retrieval and classification metrics on plain tensors: Recall@K both ways, median rank, F1.

Protocol (standard for Flickr8k/COCO): every caption is a query against all images (text→image, one
correct image); every image is a query against all captions (image→text), correct at K if *any* of its
captions is in the top K. The similarity matrix is never held whole: queries are scored a chunk at a time,
so memory is O(chunk × gallery). Scores may be normalised against a query bank first (QB-Norm): ``norms``
gives each direction's ``hubness.GalleryNorm`` (anything with ``rescore(scores)``).

Low in the layers (beside ``losses``), so a method's own validation hook and report use them, and
``eval`` re-exports them.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
import torch

from .store.paired import PairedFeatures

KS = (1, 5, 10)
DIRECTION_NAMES = {("image", "text"): ("i2t", "t2i")}


class Rescorer(Protocol):
    def rescore(self, scores: torch.Tensor) -> torch.Tensor: ...


def retrieval_report(embed_a: Any, embed_b: Any, data: PairedFeatures, *, dataset: str, split: str,
                     method: str, train_seconds: float | None = None,
                     norms: dict[str, Rescorer | None] | None = None,
                     hubness: dict[str, Any] | None = None) -> dict[str, Any]:
    """The retrieval JSON of ``latentfuse eval``: recalls in percent, both directions, median rank; with
    ``norms`` (per direction, ``a2b``/``b2a``) scored after query-bank normalisation, which ``hubness`` (the
    model's ``hubness_summary``) names in the report."""
    a, b = data.sides
    metrics = retrieval_metrics(torch.as_tensor(embed_a), torch.as_tensor(embed_b), data.pairs, norms=norms)
    forward, backward = DIRECTION_NAMES.get((a, b), (f"{a}2{b}", f"{b}2{a}"))
    report: dict[str, Any] = {"task": "retrieval", "dataset": dataset, "split": split,
                              f"n_{a}s": int(len(np.unique(data.pairs[:, 0]))),
                              f"n_{b}s": int(len(np.unique(data.pairs[:, 1]))),
                              "method": method}
    # the direction a text query retrieves images first, as papers list it
    report[backward] = metrics["b2a"]
    report[forward] = metrics["a2b"]
    report["train_seconds"] = None if train_seconds is None else round(float(train_seconds), 2)
    report["hubness"] = hubness or {"norm": "none"}
    report["metrics"] = {backward: metrics["b2a"], forward: metrics["a2b"]}
    return report


class Retriever:
    """A gallery of joint embeddings ranked for queries under an optional QB-Norm: the one ranking rule of the
    evaluation metrics, the run's test report, the index and so the server (``JointModel.retriever`` builds
    one over the model's query bank). A non-finite score (NaN/inf, from broken weights or features) is a
    failure, never a hit: it ranks below every finite one. (NaN compares false with everything, so left alone
    it would rank first.)"""

    def __init__(self, gallery: Any, norm: Rescorer | None = None) -> None:
        self.gallery = torch.as_tensor(np.asarray(gallery, dtype=np.float32)) \
            if not isinstance(gallery, torch.Tensor) else gallery
        self.norm = norm

    def __len__(self) -> int:
        return len(self.gallery)

    def raw(self, queries: Any) -> torch.Tensor:
        """(n_queries, n) similarities, a non-finite one as -inf."""
        scores = torch.as_tensor(queries, dtype=self.gallery.dtype) @ self.gallery.T
        return torch.where(torch.isfinite(scores), scores, torch.full_like(scores, float("-inf")))

    def ranked(self, queries: Any) -> torch.Tensor:
        """What the gallery is ranked by for each query: the similarities, after QB-Norm when there is one."""
        scores = self.raw(queries)
        return self.norm.rescore(scores) if self.norm is not None else scores

    def best_ranks(self, queries: Any, relevant: Sequence[Sequence[int]], chunk: int = 1024) -> np.ndarray:
        """0-based rank of the best-ranked relevant gallery item for each query. Ties rank *pessimistically*: an
        irrelevant item scoring exactly as high counts as ranked above it, so a collapsed or flattened score set
        reads as a miss, never as a perfect hit (20 identical photos would otherwise all be "R@1 = 100"). A
        query whose relevant items all score non-finite gets rank ``len(gallery)`` — a miss at every K."""
        ranks = np.empty(len(queries), dtype=np.int64)
        for start in range(0, len(queries), chunk):
            scores = self.ranked(queries[start:start + chunk])  # (chunk, n_gallery)
            rel_rows, rel_cols = _relevant_coo(relevant[start:start + chunk])
            rel_scores = scores[rel_rows, rel_cols]
            best = torch.full((scores.shape[0],), float("-inf"), dtype=scores.dtype)
            best = best.scatter_reduce(0, rel_rows, rel_scores, reduce="amax")
            at_or_above = (scores >= best[:, None]).sum(dim=1)
            relevant_there = torch.zeros_like(at_or_above).scatter_add(
                0, rel_rows, (rel_scores == best[rel_rows]).to(at_or_above.dtype))
            rank = at_or_above - relevant_there  # every item at or above the best relevant one, bar the relevant
            ranks[start:start + chunk] = torch.where(torch.isinf(best), len(self), rank).numpy()
        return ranks

    def top_k(self, queries: Any, k: int, candidates: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ranking scores, raw similarities, rows) of each query's ``k`` best items, best first: the scores
        are what the items were ranked by (non-increasing along a row). ``candidates``: (raw scores, rows) an
        approximate structure proposed, best raw first, row -1 = none (default: every item); rows past the
        candidates are -1."""
        if candidates is None:
            raw = self.raw(queries)
            rows = torch.argsort(raw, dim=1, descending=True, stable=True)
            raw = torch.take_along_dim(raw, rows, dim=1)
        else:
            raw, rows = torch.from_numpy(candidates[0]), torch.from_numpy(candidates[1].astype(np.int64))
        valid = rows >= 0
        adjusted = self.norm.rescore(raw, rows.clamp(min=0)) if self.norm is not None else raw
        adjusted = torch.where(valid, adjusted, torch.full_like(adjusted, float("-inf")))
        order = torch.argsort(adjusted, dim=1, descending=True, stable=True)[:, :k]
        picked = torch.take_along_dim(rows, order, dim=1)
        return (torch.take_along_dim(adjusted, order, dim=1).numpy(), torch.take_along_dim(raw, order, dim=1).numpy(),
                torch.where(torch.take_along_dim(valid, order, dim=1), picked, -1).numpy())


def best_ranks(queries: torch.Tensor, gallery: torch.Tensor, relevant: Sequence[Sequence[int]],
               chunk: int = 1024, norm: Rescorer | None = None) -> np.ndarray:
    """``Retriever(gallery, norm).best_ranks(queries, relevant, chunk)``."""
    return Retriever(gallery, norm).best_ranks(queries, relevant, chunk)


def _relevant_coo(relevant: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(query row, gallery column) of every relevant pair, each once (a repeat would count twice in a tie)."""
    unique = [list(dict.fromkeys(cols)) for cols in relevant]
    rows = [row for row, cols in enumerate(unique) for _ in cols]
    cols = [col for cols in unique for col in cols]
    if len(set(rows)) != len(relevant):
        raise ValueError("every query needs at least one relevant gallery item")
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def recall_summary(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@K in percent and the median (1-based) rank."""
    out = {f"R@{k}": float(100.0 * np.mean(ranks < k)) for k in ks}
    out["medr"] = float(np.median(ranks + 1))
    return out


def retrieval_metrics(emb_a: torch.Tensor, emb_b: torch.Tensor, pairs: np.ndarray, chunk: int = 1024,
                      norms: dict[str, Rescorer | None] | None = None) -> dict[str, dict[str, float]]:
    """Both directions for L2-normalised embeddings of side a (e.g. images) and side b (e.g. captions).

    ``pairs`` is an int array (P, 2) of (row in a, row in b). Returns ``{"a2b": {...}, "b2a": {...}}``.
    ``norms["a2b"]`` normalises a's queries against b's gallery (built over all of ``emb_b``), and back.
    """
    norms = norms or {}
    a_to_b: list[list[int]] = [[] for _ in range(len(emb_a))]
    b_to_a: list[list[int]] = [[] for _ in range(len(emb_b))]
    for i, j in np.asarray(pairs, dtype=np.int64):
        a_to_b[i].append(int(j))
        b_to_a[j].append(int(i))
    keep_a = [i for i, rel in enumerate(a_to_b) if rel]  # unpaired items stay in the gallery only
    keep_b = [j for j, rel in enumerate(b_to_a) if rel]
    ranks_a = Retriever(emb_b, norms.get("a2b")).best_ranks(emb_a[keep_a], [a_to_b[i] for i in keep_a], chunk)
    ranks_b = Retriever(emb_a, norms.get("b2a")).best_ranks(emb_b[keep_b], [b_to_a[j] for j in keep_b], chunk)
    return {"a2b": recall_summary(ranks_a), "b2a": recall_summary(ranks_b)}


def f1_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 (percent) of 0/1 matrices (samples × labels)."""
    from sklearn.metrics import f1_score

    truth, predicted = truth.astype(bool), predicted.astype(bool)
    return {"micro": 100.0 * float(f1_score(truth, predicted, average="micro", zero_division=0)),
            "macro": 100.0 * float(f1_score(truth, predicted, average="macro", zero_division=0))}
