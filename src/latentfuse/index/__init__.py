"""Search a collection in a model's joint space: ``latentfuse index`` builds, ``search`` / ``serve`` query."""
from .backends import KINDS, BackendConfig
from .collection import Hit, Index, BadIndexError


def open_index(directory, model=None) -> Index:
    """Open a saved index (``model`` overrides the recorded model path; it must be the same model)."""
    return Index.open(directory, model)


__all__ = ["KINDS", "BackendConfig", "Hit", "Index", "BadIndexError", "open_index"]
