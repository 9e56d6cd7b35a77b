"""Feature store: frozen-encoder features filed by item content and encoder (+ tap, + precision), cached and
resumable — a photo or a sentence is encoded once, whichever source, split or command shows it."""
from .extract import encode_items, get_features
from .feature_store import Features, FeatureStore, Shelf
from .paired import PairedFeatures, SideInputs, paired_features, take
from .tokens import TapInputs, TokenFeatures, get_tokens

__all__ = ["Features", "FeatureStore", "PairedFeatures", "Shelf", "SideInputs", "TapInputs", "TokenFeatures",
           "encode_items", "get_features", "get_tokens", "paired_features", "take"]
