"""Evaluators: each returns a JSON-ready report dict; ``report`` renders tables."""
from .retrieval import retrieval_metrics

__all__ = ["retrieval_metrics"]
