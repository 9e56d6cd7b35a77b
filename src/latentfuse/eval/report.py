"""The last steps every training job shares: the test report of a fresh model, and packaging it.

Training (``pipeline``) and distillation (``distill``) end the same way — a query bank sampled from the
training inputs, a test report under the model's own query-bank normalisation, a model card with it, the
run's settings and ``report.json`` — so both call :func:`package`, and a distilled student is an artifact
like any trained model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import saved_yaml
from ..model import JointModel
from ..store import PairedFeatures
from ..utils import atomic
from .retrieval import score
from .tables import model_card


def split_report(model: JointModel, data: PairedFeatures, dataset: str, split: str) -> dict[str, Any]:
    """The report of ``model`` on a paired split's cached inputs: what its method is scored by (retrieval under
    the model's QB-Norm for a joint embedding, F1 and routing for a classifier)."""
    return score(model, data, dataset=dataset, split=split, train_seconds=model.meta.get("train_seconds"))


def package(model: JointModel, out: Path, *, config: Any, config_file: str, reports: list[dict[str, Any]]) -> None:
    """Save ``model`` to ``out`` with its card (the reports' tables), the run's settings and ``report.json``."""
    model.write(out, card=model_card(model, reports))  # the runner applied the output rule to ``out``
    atomic.write_text(out / config_file, saved_yaml(config))
    atomic.write_json(out / "report.json", reports)
