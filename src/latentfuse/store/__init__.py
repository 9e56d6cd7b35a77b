"""Feature store: frozen-encoder features per (dataset, split, side, encoder), cached and resumable."""
from .extract import encode_items, extract_split
from .feature_store import Features, FeatureStore, ShardWriter

__all__ = ["Features", "FeatureStore", "ShardWriter", "encode_items", "extract_split"]
