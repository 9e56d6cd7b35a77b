"""Search a collection in a model's joint space: ``latentfuse index`` builds, ``search`` / ``serve`` query."""
from ..config import RuntimeConfig
from .backends import KINDS, BackendConfig
from .collection import Hit, Index, BadIndexError


def open_index(directory, model=None, runtime: RuntimeConfig | None = None) -> Index:
    """Open a saved index (``model`` overrides the recorded model path; it must be the same model); its model
    runs queries on ``runtime`` (default: ``RuntimeConfig()``, the default of every entry point)."""
    runtime = runtime or RuntimeConfig()
    return Index.open(directory, model, runtime=runtime)


__all__ = ["KINDS", "BackendConfig", "Hit", "Index", "BadIndexError", "open_index"]
