"""Evaluators: each returns a JSON-ready report dict; ``tables`` renders them (terminal, README, model card).

``TASKS`` maps a task name — retrieval, zeroshot, linear-probe, sts, pair-classification — to its evaluator;
``frozen_model`` turns frozen encoders into a JointModel so "encoder alone" rows use the same evaluators.
"""
from .frozen import frozen_model
from .retrieval import retrieval_metrics
from .tasks import TASKS, task

__all__ = ["TASKS", "frozen_model", "retrieval_metrics", "task"]
