"""Semantic textual similarity: rank agreement between cosine similarity and human scores.

Metrics: Spearman and Pearson correlation (scipy.stats) between the cosine of each pair's two
embeddings and its gold score, ×100 — the numbers STS-B / WordSim353 / SimLex999 tables report.
Data: any source of the ``sentence_pairs`` shape (``sts-b``, ``sts:FILE``, ``wordsim353``, ``simlex999``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..data import Source
from ..data.sentence_pairs import targets
from ..model import JointModel
from .tasks import TASKS, Context, Task, base_report
from .text_pairs import cosine, embed_pairs


@dataclass
class STSOptions:
    side: str = ""
    """Model side encoding the sentences: '' = first text side for both, a side name, or 'cross'
    (sentence1 via the first text side, sentence2 via the second)."""


def sts_metrics(a: np.ndarray, b: np.ndarray, gold: np.ndarray) -> dict[str, float | None]:
    """Spearman and Pearson ×100 between row-wise cosine(a, b) and gold (None when undefined)."""
    scores = cosine(a, b)
    gold = np.asarray(gold, dtype=np.float64)
    if len(scores) < 2:
        raise ValueError("correlation needs at least two pairs")
    return {"spearman": _percent(stats.spearmanr(scores, gold).statistic),
            "pearson": _percent(stats.pearsonr(scores, gold).statistic)}


def _percent(value: float) -> float | None:
    """×100, and None for an undefined correlation (a constant input) so the JSON stays valid."""
    return None if not np.isfinite(value) else float(100.0 * value)


@TASKS.register("sts")
class STS(Task):
    """Spearman / Pearson ×100 of cosine vs gold similarity (default data: sts-b, split test)."""

    name = "sts"
    default_data = "sts-b"
    options_cls = STSOptions
    summary = "Spearman/Pearson ×100 of pair cosine vs gold score (sts-b, sts:FILE, wordsim353, simlex999)"

    def evaluate(self, model: JointModel, source: Source, split: str, options: STSOptions,
                 context: Context) -> dict[str, Any]:
        data = source.load(split)
        pairs = embed_pairs(model, source, data, options.side, self.name, context)
        gold = targets(data)
        report = base_report(self.name, model, source, split, n_pairs=len(pairs.ids),
                             sides=list(pairs.sides))
        report["metrics"] = sts_metrics(pairs.a, pairs.b, np.array([gold[i] for i in pairs.ids]))
        return report
