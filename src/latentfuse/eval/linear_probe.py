"""Linear probe: logistic regression on frozen joint embeddings, C chosen on validation, accuracy on test.

Protocol: embed the train / val / test images with the model's image side (features cached in the
store); fit scikit-learn's ``LogisticRegression`` (lbfgs, multinomial) on train once per C in ``cs``;
keep the C with the best validation accuracy (ties → the smaller C); report that classifier's test
accuracy. It is not refit on train+val, so the number depends only on train for the weights and on val
for the one choice.

Without a validation split, ``val_fraction`` of the train sample is held out (seeded). A source with a
single split (e.g. ``imagefolder:DIR`` without split folders) is carved three ways: ``test_fraction`` for
test, then ``val_fraction`` of the rest for val. ``max_train`` (default 10,000) caps the train sample — a
seeded random subset, taken *before* encoding so only those images are encoded (their rows are read from
the full split's cache instead when it is already complete) — which keeps a Fashion-MNIST sweep to
seconds on two cores; ``max_val`` likewise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np

from ..config import NonNegative, Positive, PositiveFloat, Range
from ..data import Source
from ..errors import ConfigError, LatentfuseError
from ..model import JointModel
from .features import Embedded, embed, labels_of, sample_split
from .tasks import TASKS, Context, Task, base_report


@dataclass
class LinearProbeOptions:
    train_split: str = "train"
    """Split the classifier is fit on."""
    val_split: str = "val"
    """Split C is chosen on; if the source has none, val_fraction of the train sample is held out."""
    val_fraction: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.2
    """Share of the train sample held out for validation when there is no val split (seeded)."""
    test_fraction: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.2
    """Share held out for test when the source has a single split (train, val and test are all carved)."""
    max_train: NonNegative = 10000
    """Fit on at most this many train images: a seeded random sample, encoded alone (0 = all)."""
    max_val: NonNegative = 5000
    """Score C on at most this many validation images (0 = all)."""
    max_test: NonNegative = 0
    """Report on at most this many test images (0 = all; the default reports the whole test split)."""
    cs: list[PositiveFloat] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0])
    """Inverse regularisation strengths tried (LogisticRegression C)."""
    side: str = ""
    """Model side whose embeddings are probed ('' = the first image side)."""
    seed: NonNegative = 0
    """Seed of the samples and of any held-out split."""
    max_iter: Positive = 1000
    """lbfgs iterations per fit."""


@dataclass
class Labelled:
    x: np.ndarray
    y: np.ndarray  # class names (str)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, rows: np.ndarray) -> "Labelled":
        return Labelled(self.x[rows], self.y[rows])


def carve(data: Labelled, fraction: float, seed: int) -> tuple[Labelled, Labelled]:
    """(rest, held-out) with ``fraction`` of the rows held out, by a seeded permutation."""
    if not 0 < fraction < 1:
        raise ConfigError(f"linear-probe: a held-out fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(data))
    cut = int(round(len(data) * fraction))
    return data.take(np.sort(order[cut:])), data.take(np.sort(order[:cut]))


def cap(data: Labelled, n: int, seed: int) -> Labelled:
    """At most ``n`` rows (seeded random, order kept); 0 = all."""
    if n <= 0 or len(data) <= n:
        return data
    return data.take(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))


def probe(train: Labelled, val: Labelled, test: Labelled, cs: list[float],
          max_iter: int = 1000) -> tuple[dict[str, float], dict[str, float]]:
    """Fit one classifier per C on train, pick on val, score test; returns (metrics, val accuracy per C)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise LatentfuseError("linear-probe needs scikit-learn: pip install scikit-learn") from None
    if not cs:
        raise ConfigError("linear-probe: cs (the C values to try) is empty")
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise ConfigError(f"linear-probe: the {name} set is empty")
    if len(np.unique(train.y)) < 2:
        raise ConfigError("linear-probe: the train set has a single class; nothing to separate")
    best: tuple[float, float, Any] | None = None  # (val accuracy, C, classifier)
    sweep: dict[str, float] = {}
    for c in sorted(float(c) for c in cs):
        classifier = LogisticRegression(C=c, max_iter=max_iter).fit(train.x, train.y)
        accuracy = 100.0 * float(np.mean(classifier.predict(val.x) == val.y))
        sweep[f"{c:g}"] = accuracy
        if best is None or accuracy > best[0]:
            best = (accuracy, c, classifier)
    assert best is not None
    test_accuracy = 100.0 * float(np.mean(best[2].predict(test.x) == test.y))
    return {"accuracy": test_accuracy, "val_accuracy": best[0], "C": best[1]}, sweep


@TASKS.register("linear-probe")
class LinearProbe(Task):
    """Logistic-regression probe on frozen joint image embeddings, C swept on val; test accuracy (%)."""

    name = "linear-probe"
    default_data = "fashion-mnist"
    options_cls = LinearProbeOptions
    summary = "logistic regression on joint image embeddings, C chosen on val; test accuracy %"

    def evaluate(self, model: JointModel, source: Source, split: str, options: LinearProbeOptions,
                 context: Context) -> dict[str, Any]:
        modality = model.sides[options.side].modality if options.side in model.sides else "image"
        side = model.side_for(modality, options.side, purpose=self.name)
        splits = source.splits()
        held_out = []
        if options.train_split in splits and options.train_split != split:
            train = self._labelled(model, side, source, options.train_split, options.max_train, options, context)
            if options.val_split in splits and options.val_split not in (split, options.train_split):
                val = self._labelled(model, side, source, options.val_split, options.max_val, options, context)
            else:
                train, val = carve(train, options.val_fraction, options.seed)
                held_out.append(f"val = {options.val_fraction:g} of the train sample")
            test = self._labelled(model, side, source, split, options.max_test, options, context)
        elif len(splits) == 1:
            pool = self._labelled(model, side, source, split, 0, options, context)
            rest, test = carve(pool, options.test_fraction, options.seed)
            train, val = carve(rest, options.val_fraction, options.seed + 1)
            train, val = cap(train, options.max_train, options.seed), cap(val, options.max_val, options.seed)
            test = cap(test, options.max_test, options.seed)
            held_out.append(f"train/val/test carved from split {split!r} "
                            f"(test {options.test_fraction:g}, val {options.val_fraction:g} of the rest)")
        else:
            raise ConfigError(f"linear-probe: {source.spec} has no train split {options.train_split!r} other than "
                              f"the test split {split!r} (splits: {', '.join(splits)}); set "
                              "--opt linear-probe.train_split=NAME")
        metrics, sweep = probe(train, val, test, list(options.cs), options.max_iter)
        report = base_report(self.name, model, source, split, n_train=len(train), n_val=len(val),
                             n_test=len(test), n_classes=int(len(np.unique(train.y))),
                             protocol="; ".join(held_out) or "train / val / test splits",
                             val_accuracy_by_C=sweep)
        report["metrics"] = metrics
        return report

    def _labelled(self, model: JointModel, side: str, source: Source, split: str, limit: int,
                  options: LinearProbeOptions, context: Context) -> Labelled:
        """Embeddings + class names of (a sample of) one split's items of the probed modality."""
        full = source.load(split)
        data_side = full.side_for(model.sides[side].modality, where=f"{self.name}: {source.spec}")
        data = sample_split(full, data_side, limit, options.seed)
        got: Embedded = embed(model, side, source, data, data_side, context.store, skip_bad=context.skip_bad,
                              progress=context.progress)
        return Labelled(got.x, np.array(labels_of(data, got.ids, self.name, source), dtype=object))

