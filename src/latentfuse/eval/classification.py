"""The ``classification`` task: a pair classifier's own report (DynMM: micro / macro F1, which expert each sample
went to and what that cost) on a labelled split. What is measured is the method's business
(``Method.report``; DynMM's in ``methods/dynmm_scoring.py``); this task reads the data and asks it."""
from __future__ import annotations

from typing import Any

from ..data import Source
from ..errors import ConfigError
from ..model import JointModel
from .features import match_sides, paired_inputs
from .tasks import TASKS, Context, NoOptions, Task, base_report

@TASKS.register("classification")
class Classification(Task):
    """A classifier's (dynmm) micro / macro F1 on labelled pairs, with its routing and mean MFLOPs per sample."""

    name = "classification"
    default_data = None
    options_cls = NoOptions
    summary = "micro / macro F1 of a pair classifier (dynmm), expert shares and MFLOPs per sample (needs --data)"

    def evaluate(self, model: JointModel, source: Source, split: str, options: NoOptions,
                 context: Context) -> dict[str, Any]:
        if model.method.embeds:
            raise ConfigError(f"task classification scores pair classifiers (dynmm); this model is a "
                              f"joint embedding ({model.method.name}): use retrieval")
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
        report["metrics"] = model.method.report(paired, dataset=source.spec, split=split)["metrics"]
        return report
