"""Pair classification (paraphrase or not): a cosine threshold fit on one split, scored on another.

Protocol: the threshold that maximises accuracy on the fit split (``dev``/``val`` when the source has
one, else ``train``) — predict 1 when cosine ≥ threshold — is applied to the evaluated split. Reported in
percent: accuracy, macro F1, and precision / recall / F1 for *each* class (0 and 1), as the LightCRL
tables list both; plus the threshold and the accuracy it reached on the fit split.

The best threshold is found by one sort, not a search over a grid: after sorting the scores, predicting
1 for the top i pairs has a closed-form accuracy for every i, and the threshold is the midpoint between
the i-th and (i+1)-th distinct scores. Ties between thresholds go to the highest one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Source
from ..data.sentence_pairs import targets
from ..errors import ConfigError
from ..model import JointModel
from .tasks import TASKS, Context, Task, base_report
from .text_pairs import cosine, embed_pairs

FIT_SPLITS = ("dev", "val", "train")


@dataclass
class PairClassificationOptions:
    side: str = ""
    """Model side encoding the sentences: '' = first text side for both, a side name, or 'cross'."""
    fit_split: str = ""
    """Split the threshold is chosen on ('' = dev, else val, else train)."""


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy %) maximising accuracy of ``score >= threshold`` → 1 on these labels."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if len(scores) == 0:
        raise ValueError("no pairs to fit a threshold on")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    n, negatives = len(s), int((~y).sum())
    true_pos = np.concatenate([[0], np.cumsum(y)])  # predicting 1 for the top i pairs, i = 0..n
    false_pos = np.arange(n + 1) - true_pos
    correct = true_pos + (negatives - false_pos)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[:-1] > s[1:]  # a cut inside a run of equal scores is not a threshold
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        threshold = s[0] + 1.0  # above every score: predict 0 for all
    elif i == n:
        threshold = s[-1]
    else:
        middle = (s[i - 1] + s[i]) / 2.0
        threshold = middle if middle > s[i] else s[i - 1]  # adjacent floats have no midpoint
    return float(threshold), float(100.0 * correct[i] / n)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision/recall/F1 (%) of ``score >= threshold`` → 1 (scikit-learn's)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    truth = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=[0, 1],
                                                                     zero_division=0)
    classes = {str(c): {"precision": 100.0 * float(precision[c]), "recall": 100.0 * float(recall[c]),
                        "f1": 100.0 * float(f1[c]), "support": int(support[c])} for c in (0, 1)}
    return {"accuracy": 100.0 * float(accuracy_score(truth, predicted)),
            "f1_macro": (classes["0"]["f1"] + classes["1"]["f1"]) / 2.0,
            "threshold": float(threshold), "classes": classes}


@TASKS.register("pair-classification")
class PairClassification(Task):
    """Cosine-threshold paraphrase classification: accuracy + per-class P/R/F1 % (default data: mrpc)."""

    name = "pair-classification"
    default_data = "mrpc"
    options_cls = PairClassificationOptions
    summary = "cosine threshold fit on dev/train; accuracy and per-class P/R/F1 % (mrpc, pair-labels:FILE)"

    def evaluate(self, model: JointModel, source: Source, split: str, options: PairClassificationOptions,
                 context: Context) -> dict[str, Any]:
        fit_split = options.fit_split or next((s for s in FIT_SPLITS if s in source.splits()), "")
        if not fit_split or fit_split == split:
            raise ConfigError(f"pair-classification: {source.spec} needs a split to fit the threshold on other "
                              f"than {split!r} (splits: {', '.join(source.splits())}); set "
                              "--opt pair-classification.fit_split=NAME")
        fit_scores, fit_labels = self._scored(model, source, fit_split, options, context)
        threshold, fit_accuracy = best_threshold(fit_scores, fit_labels)
        scores, labels = self._scored(model, source, split, options, context)
        report = base_report(self.name, model, source, split, n_pairs=len(scores), fit_split=fit_split,
                             n_fit_pairs=len(fit_scores))
        report["metrics"] = {**classification_metrics(scores, labels, threshold), "fit_accuracy": fit_accuracy}
        return report

    def _scored(self, model: JointModel, source: Source, split: str, options: PairClassificationOptions,
                context: Context) -> tuple[np.ndarray, np.ndarray]:
        data = source.load(split)
        pairs = embed_pairs(model, source, data, options.side, self.name, context)
        gold = targets(data)
        labels = np.array([gold[i] for i in pairs.ids])
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ConfigError(f"pair-classification: {source.spec} has targets other than 0/1; use a "
                              "pair-labels:FILE (label column) source, not a scored one")
        return cosine(pairs.a, pairs.b), labels.astype(int)
