"""Zero-shot classification: class names → prompts → text embeddings → nearest class for each image.

Protocol (CLIP's, with a small prompt ensemble): each class name is put into every template of
``TEMPLATES``; the prompts go through the model's text side, are averaged per class and re-normalised.
Each image is assigned the classes in order of cosine similarity. Top-k is correct when fewer than k
other classes score at least as high as the true one (ties count against the image, as in retrieval: a
model that scores every class alike is at zero, not at 100); k is capped at the number of classes, so with
five classes or fewer ``top5`` is 100 by construction.

Class names come from the source's labels: the text side's labels first (its caption order, e.g.
Fashion-MNIST's ten classes), then any other image label, sorted. A name reads in a prompt with
underscores as spaces (``golden_retriever`` → ``a photo of a golden retriever.``).

Prompts are few (classes × templates) and are encoded directly; the images go through the feature store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data import Source, SplitData
from ..data.imagefolder import prompt_name
from ..errors import ConfigError
from ..model import JointModel
from .features import embed, labels_of, same_width
from .tasks import TASKS, Context, Task, base_report

TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "a low-resolution photo of a {}.",
    "a black and white photo of a {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
    "a photo of the {}.",
)
KS = (1, 5)


@dataclass
class ZeroShotOptions:
    templates: list[str] = field(default_factory=lambda: list(TEMPLATES))
    """Prompt templates, each with one {} for the class name; their text embeddings are averaged."""
    image_side: str = ""
    """Model side that embeds the images ('' = the model's first image side)."""
    text_side: str = ""
    """Model side that embeds the prompts ('' = the model's first text side)."""


def topk_accuracy(scores: np.ndarray, targets: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Top-k accuracy in percent for (n, classes) scores and true class indices; k capped at #classes."""
    if len(scores) == 0:
        raise ValueError("no items to score")
    true = scores[np.arange(len(scores)), targets]
    rank = (scores >= true[:, None]).sum(axis=1) - 1  # every other class scoring as high ranks above it
    rank = np.where(np.isfinite(true), rank, scores.shape[1])  # a NaN score for the true class is a miss
    return {f"top{k}": float(100.0 * np.mean(rank < min(k, scores.shape[1]))) for k in ks}


def class_names(data: SplitData) -> list[str]:
    """The class list: labels of the text side in its order, then the remaining image labels, sorted."""
    image_side = data.side_for("image")
    text_side = next(s.name for s in data.sides if s.name != image_side)
    names = list(dict.fromkeys(data.labels[it.id] for it in data.items[text_side] if it.id in data.labels))
    rest = {data.labels[it.id] for it in data.items[image_side] if it.id in data.labels} - set(names)
    return names + sorted(rest)


def class_embeddings(model: JointModel, text_side: str, names: Sequence[str],
                     templates: Sequence[str]) -> np.ndarray:
    """(classes, dim) L2-normalised mean of each class's prompt embeddings."""
    for template in templates:
        if template.count("{}") != 1:
            raise ConfigError(f"zeroshot template {template!r}: needs exactly one {{}} for the class name")
    prompts = [template.format(prompt_name(name)) for name in names for template in templates]
    x = model.encode(text_side, prompts).reshape(len(names), len(templates), -1).mean(axis=1)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def predict_scores(images: np.ndarray, classes: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(n, classes) cosine scores, a chunk of images at a time (classes are few, images many)."""
    return np.concatenate([images[i:i + chunk] @ classes.T for i in range(0, len(images), chunk)]
                          or [np.zeros((0, len(classes)), dtype=np.float32)])


@TASKS.register("zeroshot")
class ZeroShot(Task):
    """Zero-shot classification top-1/top-5 (%) with a prompt ensemble (default data: fashion-mnist)."""

    name = "zeroshot"
    default_data = "fashion-mnist"
    options_cls = ZeroShotOptions
    summary = "classify images by cosine to prompt-ensembled class names; top-1/top-5 %"

    def evaluate(self, model: JointModel, source: Source, split: str, options: ZeroShotOptions,
                 context: Context) -> dict[str, Any]:
        image_side = model.side_for("image", options.image_side, purpose=self.name)
        text_side = model.side_for("text", options.text_side, purpose=self.name)
        data = source.load(split)
        data_image = data.side_for("image", where=f"{self.name}: {source.spec}")
        images = embed(model, image_side, source, data, data_image, context.store, skip_bad=context.skip_bad,
                       progress=context.progress)
        labels = labels_of(data, images.ids, self.name, source)
        names = class_names(data)
        classes = class_embeddings(model, text_side, names, options.templates)
        same_width(self.name, **{image_side: images.x, text_side: classes})
        index = {name: k for k, name in enumerate(names)}
        scores = predict_scores(images.x, classes)
        report = base_report(self.name, model, source, split, n_images=len(images.ids), n_classes=len(names),
                             n_templates=len(options.templates))
        report["metrics"] = topk_accuracy(scores, np.array([index[label] for label in labels]))
        return report
