"""Multi-label classification of pairs (Flickr8k-Tags, MM-IMDB-style tables): micro and macro F1, plus — for a
dynamic model — which expert each sample went to and what that cost.

Micro F1 pools every (sample, label) decision; macro F1 averages the per-label F1 (a label never predicted and
never present scores 0, scikit-learn's ``zero_division=0``), as the MM-IMDB protocol DynMM reports. A label is
predicted when its sigmoid is above ``threshold`` (0.5).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import Source
from ..errors import ConfigError
from ..methods import Method
from ..model import JointModel
from ..store.paired import PairedFeatures
from ..utils.runtime import move
from .features import match_sides, paired_inputs
from .tasks import TASKS, Context, NoOptions, Task, base_report

THRESHOLD = 0.5


def f1_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 (percent) of 0/1 matrices (samples × labels)."""
    from sklearn.metrics import f1_score

    truth, predicted = truth.astype(bool), predicted.astype(bool)
    return {"micro": 100.0 * float(f1_score(truth, predicted, average="micro", zero_division=0)),
            "macro": 100.0 * float(f1_score(truth, predicted, average="macro", zero_division=0))}


@torch.inference_mode()
def predict_cached(method: Method, data: PairedFeatures, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(label probabilities, chosen expert) for every pair of ``data``, from its cached features."""
    was_training = method.training
    method.eval()
    probs, chosen = [], []
    try:
        for start in range(0, len(data), chunk):
            batch = move(data.batch(torch.arange(start, min(start + chunk, len(data)))), method.device)
            logits, experts = method.classify(batch)
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
            chosen.append(experts.cpu().numpy())
    finally:
        method.train(was_training)
    return np.concatenate(probs), np.concatenate(chosen)


def routing(method: Method, chosen: np.ndarray) -> dict[str, Any]:
    """Share of samples per expert, mean FLOPs per sample, and how often the costly encoder ran."""
    experts = list(method.config.experts)
    counts = np.bincount(chosen, minlength=len(experts))
    flops = np.asarray(method.flops, dtype=np.float64)
    runs_costly = np.array([method.expert_input(k) != "" for k in range(len(experts))])
    n = max(1, len(chosen))
    return {"share": {name: float(c / n) for name, c in zip(experts, counts)},
            "mflops_per_sample": float((counts * flops).sum() / n / 1e6),
            "costly_encoder_fraction": float(counts[runs_costly].sum() / n)}


def classification_metrics(method: Method, data: PairedFeatures) -> dict[str, Any]:
    """F1 of the hard-routed predictions and the routing statistics (the trainer's validation hook)."""
    if data.labels is None:
        raise ConfigError(f"a {method.name} classifier is scored on labelled pairs; this data has none (use "
                          "flickr8k-tags:DIR or a pairs: table with a labels column)")
    probs, chosen = predict_cached(method, data)
    return {"f1": f1_scores(probs > THRESHOLD, data.labels.numpy()), **routing(method, chosen)}


validate = classification_metrics


def classification_report(method: Method, data: PairedFeatures, *, dataset: str, split: str,
                          train_seconds: float | None = None) -> dict[str, Any]:
    """The report a classifier's run writes for its test split (same envelope as the retrieval report)."""
    report = {"task": "classification", "dataset": dataset, "split": split, "method": method.name,
              "n": len(data), "labels": list(data.label_names), "metrics": classification_metrics(method, data)}
    if train_seconds is not None:
        report["train_seconds"] = train_seconds
    return report


@TASKS.register("classification")
class Classification(Task):
    """A classifier's (dynmm) micro / macro F1 on labelled pairs, with its routing and mean MFLOPs per sample."""

    name = "classification"
    default_data = None
    options_cls = NoOptions
    summary = "micro / macro F1 of a pair classifier (dynmm), expert shares and MFLOPs per sample (needs --data)"

    def evaluate(self, model: JointModel, source: Source, split: str, options: NoOptions,
                 context: Context) -> dict[str, Any]:
        if model.method.task != "classification":
            raise ConfigError(f"task classification scores pair classifiers (dynmm); this model is a "
                              f"{model.method.name} joint embedding: use retrieval")
        data = source.load(split)
        if not data.tag_names:
            raise ConfigError(f"task classification needs labelled pairs; {source.spec} has none (use "
                              "flickr8k-tags:DIR or a pairs: table with a labels column)")
        paired = paired_inputs(model, source, data, match_sides(model, data, self.name), context.store,
                               skip_bad=context.skip_bad, progress=context.progress)
        if list(paired.label_names) != list(model.method.config.labels):
            raise ConfigError(f"{source.spec}: its labels {list(paired.label_names)} are not the model's "
                              f"{list(model.method.config.labels)}")
        report = base_report(self.name, model, source, split, n=len(paired))
        report["metrics"] = classification_metrics(model.method, paired)
        return report
