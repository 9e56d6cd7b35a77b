"""The ``robustness`` task: a model's score under corrupted inputs, per corruption and severity, averaged over
seeds (mean ± std), with the relative drop from clean — for retrieval (R@1/R@5 both ways) and for
classifiers (micro/macro F1), as DynMM and DIME-FM report robustness.

Corruptions (``encoders.corrupt``) hit the *raw input* before the frozen encoder: images (Gaussian pixel
noise, blur, JPEG, low resolution), texts (word dropout, typos); ``feature-noise`` adds Gaussian noise to the
cached features of every side instead (fast: no encoder runs). ``A+B`` applies both at once, each to the
sides of its modality (``gaussian-noise+word-dropout`` = image and text noise together). Corrupted features
are cached under a fingerprint that names the corruption, severity and seed, so re-running is free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import torch

from ..choices import HUBNESS_OVERRIDES
from ..config import OneOf, Range
from ..data import Source, SplitData
from ..encoders import Encoder
from ..encoders.corrupt import MODALITY_OF, CorruptedEncoder, check, feature_noise
from ..errors import ConfigError
from ..specs import members
from ..model import JointModel
from ..store import PairedFeatures
from .features import match_sides, paired_inputs
from . import retrieval
from .tasks import TASKS, Context, Task, base_report


@dataclass
class RobustnessOptions:
    corruptions: list[str] = field(default_factory=lambda: ["gaussian-noise", "blur", "jpeg", "low-resolution",
                                                            "word-dropout", "typos", "feature-noise"])
    """Corruptions to apply (A+B = both at once); see `latentfuse.encoders.corrupt`."""
    severities: list[Annotated[int, Range(1, 3)]] = field(default_factory=lambda: [1, 2, 3])
    """Severities, 1 (mild) to 3 (strong)."""
    seeds: list[Annotated[int, Range(0, 2**32 - 1)]] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of the corruption noise; the report gives mean and std over them."""
    hubness: Annotated[str, OneOf(HUBNESS_OVERRIDES)] = ""
    """Query-bank normalisation of retrieval scores, clean and corrupted alike: '' = the model's own setting
    (as the retrieval task scores it), or none | is | dis."""


@TASKS.register("robustness")
class Robustness(Task):
    """Scores under corrupted inputs (several corruptions × severities × seeds), and the drop from clean."""

    name = "robustness"
    default_data = None
    options_cls = RobustnessOptions
    summary = "retrieval or classification scores under input corruptions, mean ± std over seeds"

    def evaluate(self, model: JointModel, source: Source, split: str, options: RobustnessOptions,
                 context: Context) -> dict[str, Any]:
        data = source.load(split)
        sides = match_sides(model, data, self.name)
        modality = {side.name: side.modality for side in data.sides}
        for corruption in options.corruptions:
            for part in members(corruption, "robustness corruption", "gaussian-noise+word-dropout"):
                for severity in options.severities:
                    check(part, severity)
                if part in MODALITY_OF and MODALITY_OF[part] not in modality.values():
                    raise ConfigError(f"robustness: corruption {part!r} needs a {MODALITY_OF[part]} side; "
                                      f"{source.spec} has {', '.join(f'{s} ({m})' for s, m in modality.items())}")
        model.hub_norm(options.hubness)  # a bad norm fails before any work
        clean = score(model, source, data, sides, encoders_for(model, sides, modality, [], 0, 0), context,
                      hubness=options.hubness)
        metrics: dict[str, Any] = {"clean": clean}
        for corruption in options.corruptions:
            parts = members(corruption, "robustness corruption", "gaussian-noise+word-dropout")
            metrics[corruption] = {}
            for severity in options.severities:
                runs = []
                for seed in options.seeds:
                    encoders = encoders_for(model, sides, modality, parts, severity, seed)
                    noise = (severity, seed) if "feature-noise" in parts else None
                    runs.append(score(model, source, data, sides, encoders, context, noise, options.hubness))
                metrics[corruption][f"s{severity}"] = summarise(runs, clean)
        report = base_report(self.name, model, source, split, seeds=list(options.seeds),
                             hubness=model.hubness_summary(options.hubness))
        report["metrics"] = metrics
        return report


def encoders_for(model: JointModel, sides: dict[str, str], modality: dict[str, str], parts: list[str],
                 severity: int, seed: int) -> dict[str, Encoder]:
    """Data side → encoder: the model side's encoder, wrapped in the corruption of its modality if any."""
    out: dict[str, Encoder] = {}
    for data_side, model_side in sides.items():
        encoder = model.encoder(model_side)
        for part in parts:
            if MODALITY_OF.get(part) == modality[data_side]:
                encoder = CorruptedEncoder(encoder, part, severity, seed)
        out[data_side] = encoder
    return out


def score(model: JointModel, source: Source, data: SplitData, sides: dict[str, str], encoders: dict[str, Encoder],
          context: Context, noise: tuple[int, int] | None = None, hubness: str = "") -> dict[str, float]:
    """The model's headline numbers on these (possibly corrupted) features: F1 for a classifier, R@1/R@5
    both ways for a joint embedding, ranked under the same query-bank normalisation as the retrieval task
    (``hubness``: the model's setting, or none | is | dis)."""
    paired = paired_inputs(model, source, data, sides, context.store, encoders=encoders, skip_bad=context.skip_bad,
                           progress=context.progress)
    if noise is not None:
        paired = with_feature_noise(paired, *noise)
    report = retrieval.score(model, paired, dataset=source.spec, split=data.split, sides=sides, hubness=hubness,
                             task="robustness")
    return model.method.headline(report)


def with_feature_noise(paired: PairedFeatures, severity: int, seed: int) -> PairedFeatures:
    """The pooled features of every side plus Gaussian noise (token sides are left as they are)."""
    x = {side: torch.from_numpy(feature_noise(value.numpy(), severity, seed + k)) if isinstance(value, torch.Tensor)
         else value for k, (side, value) in enumerate(paired.x.items())}
    return PairedFeatures(paired.sides, x, paired.ids, paired.pairs, paired.targets, paired.labels, paired.label_names)


def summarise(runs: list[dict[str, float]], clean: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per metric: mean and std over seeds, and the drop from clean in percent of the clean score."""
    out = {}
    for key in clean:
        values = np.array([run[key] for run in runs], dtype=np.float64)
        mean = float(values.mean())
        out[key] = {"mean": mean, "std": float(values.std()),
                    "drop_pct": 100.0 * (clean[key] - mean) / clean[key] if clean[key] else 0.0}
    return out
