"""How a DynMM model is scored and run on raw inputs: what ``DynMM.validate / report / headline / predict``
do. Kept apart from the heads (``dynmm.py``) because it is inference, not the paper's training recipe.

Micro F1 pools every (sample, label) decision; macro F1 averages the per-label F1 (a label never predicted and
never present scores 0, scikit-learn's ``zero_division=0``), as the MM-IMDB protocol DynMM reports. A label is
predicted when its sigmoid is above ``threshold`` (0.5). Routing statistics say which expert each sample went
to and what that cost.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..metrics import f1_scores
from ..store import TapInputs
from ..store.paired import PairedFeatures
from ..store.tokens import in_memory_tokens
from ..utils.runtime import move

if TYPE_CHECKING:
    from .dynmm import DynMM

THRESHOLD = 0.5


@torch.inference_mode()
def predict_cached(method: "DynMM", data: PairedFeatures, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
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


def routing(method: "DynMM", chosen: np.ndarray) -> dict[str, Any]:
    """Share of samples per expert, mean FLOPs per sample, and how often the costly encoder ran."""
    experts = list(method.config.experts)
    counts = np.bincount(chosen, minlength=len(experts))
    flops = np.asarray(method.flops, dtype=np.float64)
    runs_costly = np.array([method.expert_input(k) != "" for k in range(len(experts))])
    n = max(1, len(chosen))
    return {"share": {name: float(c / n) for name, c in zip(experts, counts)},
            "mflops_per_sample": float((counts * flops).sum() / n / 1e6),
            "costly_encoder_fraction": float(counts[runs_costly].sum() / n)}


def classification_metrics(method: "DynMM", data: PairedFeatures) -> dict[str, Any]:
    """F1 of the hard-routed predictions and the routing statistics (the trainer's validation hook)."""
    if data.labels is None:
        raise ConfigError(f"a {method.name} classifier is scored on labelled pairs; this data has none (use "
                          "flickr8k-tags:DIR or a pairs: table with a labels column)")
    probs, chosen = predict_cached(method, data)
    return {"f1": f1_scores(probs > THRESHOLD, data.labels.numpy()), **routing(method, chosen)}


def classification_report(method: "DynMM", data: PairedFeatures, *, dataset: str, split: str,
                          train_seconds: float | None = None) -> dict[str, Any]:
    """The report a classifier's run writes for its test split (same envelope as the retrieval report)."""
    report = {"task": "classification", "dataset": dataset, "split": split, "method": method.name,
              "n": len(data), "labels": list(data.label_names), "metrics": classification_metrics(method, data)}
    if train_seconds is not None:
        report["train_seconds"] = train_seconds
    return report


def check_pairs(raw: dict[str, list[Any]], cheap: str) -> None:
    """Every pair has both inputs, each real: the gate decides per pair which one it reads only after the cheap
    side ran, so a missing or NaN costly input must not pass just because this pair went elsewhere."""
    lengths = {side: len(items) for side, items in raw.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"predict needs one input per side for each pair; got {lengths}")
    for side, items in raw.items():
        for i, item in enumerate(items):
            if item is None:
                raise ConfigError(f"predict: pair {i} has no {side} input; give every pair both (the gate picks, "
                                  f"after reading the {cheap}, whether the other is encoded)")
            values = item.detach().cpu().numpy() if hasattr(item, "detach") else item
            if isinstance(values, np.ndarray) and values.dtype.kind == "f" and not np.isfinite(values).all():
                raise ConfigError(f"predict: pair {i}'s {side} input holds NaN or inf values")


@torch.inference_mode()
def predict_raw(method: "DynMM", raw: dict[str, list[Any]], encoder: Callable[[str], Any], *, batch_size: int,
                threshold: float) -> dict[str, Any]:
    """Labels of raw pairs (side → inputs): ``labels`` per pair, ``scores`` (n, labels) sigmoid, ``experts``
    (the expert each pair went to), ``mflops_per_sample`` (counted FLOPs of what ran). The cheap side runs for
    every pair, the gate chooses, and the costly encoder runs only for the pairs whose expert reads it, only
    up to the tap it reads: the others' images are never decoded or encoded."""
    cfg = method.config
    check_pairs(raw, cfg.cheap)
    n = len(raw[cfg.cheap])
    scores, chosen = [], []
    for start in range(0, n, batch_size):
        part = {side: items[start:start + batch_size] for side, items in raw.items()}
        logits, experts = _predict_batch(method, part, encoder)
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        chosen.append(experts.cpu().numpy())
    probs = np.concatenate(scores) if scores else np.zeros((0, len(cfg.labels)), np.float32)
    picked = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    names = cfg.labels
    return {"labels": [[names[j] for j in np.flatnonzero(row > threshold)] for row in probs], "scores": probs,
            "experts": [cfg.experts[k] for k in picked],
            "mflops_per_sample": float(np.mean([method.flops[k] for k in picked]) / 1e6) if len(picked) else 0.0}


def _predict_batch(method: "DynMM", raw: dict[str, list[Any]],
                   encoder: Callable[[str], Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of ``predict``: the cheap side, the gate, then each costly input once for the pairs
    that need it (pooled feature or one tap), then each expert on its own pairs."""
    cfg = method.config
    cheap = torch.as_tensor(encoder(cfg.cheap).encode(raw[cfg.cheap]), device=method.device)
    chosen = method.route(cheap)
    logits = cheap.new_zeros(len(chosen), len(cfg.labels))
    needs = {k: method.expert_input(k) for k in range(len(cfg.experts))}
    costly: dict[str, tuple[torch.Tensor, Any]] = {}  # need → (rows, features)
    for need in sorted({needs[k] for k in chosen.tolist()} - {""}):
        readers = chosen.new_tensor([k for k, n in needs.items() if n == need])
        rows = torch.nonzero(torch.isin(chosen, readers))[:, 0]
        items = [raw[cfg.costly][i] for i in rows.tolist()]
        costly[need] = (rows, _costly_inputs(method, encoder(cfg.costly), items, need))
    for k in sorted(set(chosen.tolist())):
        rows = torch.nonzero(chosen == k)[:, 0]
        batch: dict[str, Any] = {cfg.cheap: cheap[rows]}
        if needs[k]:
            have, features = costly[needs[k]]
            position = torch.searchsorted(have, rows)
            batch[cfg.costly] = features[position] if needs[k] == "pooled" else \
                {tap: (t[position], m[position]) for tap, (t, m) in features.items()}
        logits[rows] = method.expert_logits(k, method.inputs(batch, k))
    return logits, chosen


def _costly_inputs(method: "DynMM", encoder: Any, items: list[Any], need: str) -> Any:
    """The costly encoder's pooled feature (``need == "pooled"``), or one tap's (tokens, mask) of ``items``."""
    if need == "pooled":
        return torch.as_tensor(encoder.encode(items), device=method.device)
    tokens = in_memory_tokens(encoder.encode_taps(items, [need])[need], encoder.taps()[need].channels)
    return move(TapInputs({need: tokens}).take(np.arange(len(items))), method.device)
