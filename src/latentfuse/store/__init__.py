"""Feature store: frozen-encoder features per (dataset, split, side, encoder[, tap]), cached and resumable."""
from .extract import encode_items, get_features
from .feature_store import Features, FeatureStore, ShardWriter
from .paired import PairedFeatures, SideInputs, paired_features, take
from .tokens import TapInputs, TokenFeatures, get_tokens

__all__ = ["Features", "FeatureStore", "PairedFeatures", "ShardWriter", "SideInputs", "TapInputs", "TokenFeatures",
           "encode_items", "get_features", "get_tokens", "paired_features", "take"]
