"""Feature store: frozen-encoder features per (dataset, split, side, encoder), cached and resumable."""
from .extract import encode_items, get_features
from .feature_store import Features, FeatureStore, ShardWriter
from .paired import PairedFeatures, paired_features

__all__ = ["Features", "FeatureStore", "PairedFeatures", "ShardWriter", "encode_items", "get_features",
           "paired_features"]
