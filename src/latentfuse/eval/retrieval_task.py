"""The ``retrieval`` task: Recall@1/5/10 and median rank both ways, as ``the run's own test report (``eval.report.split_report``) computes them.

Features come through the feature store like every task. Data sides map to model sides by name when
they match (the usual case: the model was trained on this kind of data), else by modality — so an
image–text model can also be scored on caption↔caption retrieval of a text–text set through its one text
side. The report keeps retrieval's historic top-level keys (``t2i``/``i2t`` or ``a2b`` names, ``n_<side>s``,
``train_seconds``) next to ``metrics``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from ..choices import HUBNESS_OVERRIDES
from ..config import OneOf
from ..data import Source
from ..model import JointModel
from .features import match_sides, paired_inputs
from .retrieval import score
from .tasks import TASKS, Context, Task


@dataclass
class RetrievalOptions:
    hubness: Annotated[str, OneOf(HUBNESS_OVERRIDES)] = ""
    """Query-bank normalisation of the scores: '' = the model's own setting (saved with its bank), or
    none | is | dis (needs a model saved with a query bank)."""


@TASKS.register("retrieval")
class Retrieval(Task):
    """Cross-side retrieval Recall@1/5/10 and median rank, both directions (needs a dataset)."""

    name = "retrieval"
    default_data = None
    options_cls = RetrievalOptions
    summary = "Recall@1/5/10 and median rank in both directions (needs --data or retrieval=SPEC)"

    def evaluate(self, model: JointModel, source: Source, split: str, options: RetrievalOptions,
                 context: Context) -> dict[str, Any]:
        options = self.options(options)
        data = source.load(split)
        sides = match_sides(model, data, self.name)
        paired = paired_inputs(model, source, data, sides, context.store, skip_bad=context.skip_bad,
                               progress=context.progress)
        report = score(model, paired, dataset=source.spec, split=split, sides=sides, hubness=options.hubness,
                       train_seconds=model.meta.get("train_seconds"))
        metrics = report.pop("metrics")
        report["encoders"] = {side: spec.encoder for side, spec in model.sides.items()}
        report["metrics"] = metrics
        return report
