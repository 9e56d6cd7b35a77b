"""Evaluators: each returns a JSON-ready report dict; ``tables`` / ``report`` render them.

``TASKS`` (in ``eval.tasks``) maps a task name — retrieval, zeroshot, linear-probe, sts,
pair-classification — to its evaluator; ``frozen_model`` (in ``eval.frozen``) turns frozen encoders into a
JointModel so "encoder alone" rows use the same evaluators. Both are imported lazily here: the training
loop imports ``eval.retrieval``, and the task modules import the config, which imports the training loop.
"""
from typing import Any

from .retrieval import retrieval_metrics

__all__ = ["TASKS", "frozen_model", "retrieval_metrics", "task"]


def __getattr__(name: str) -> Any:
    if name in ("TASKS", "task"):
        from . import tasks

        tasks._import_builtin_tasks()
        return getattr(tasks, name)
    if name == "frozen_model":
        from .frozen import frozen_model

        return frozen_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
