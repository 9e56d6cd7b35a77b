"""The closed vocabularies of latentfuse's options, written once at the bottom layer.

Configuration schemas (``config``), the runtime resolver (``utils.runtime``), the index and the model read
these tuples; nothing else spells a choice list out.
"""
from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "fp16")
"""Autocast precision of training and encoding (fp16: CUDA only)."""
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
"""What runs the frozen encoders; ``auto`` = ONNX Runtime when it can run here, else torch."""
DEFAULT_BACKEND = "auto"
"""The backend every entry point (``load``, ``from_pretrained``, ``open_index``, the CLI, the server) starts from."""
HUBNESS_NORMS = ("none", "is", "dis")
"""QB-Norm's score normalisations: none | inverted softmax | dynamic inverted softmax."""
HUBNESS_OVERRIDES = ("", *HUBNESS_NORMS)
"""A query-time choice of norm; '' = the model's own setting."""
INDEX_KINDS = ("exact", "ivf", "ivf-pq", "ivf-rq", "hnsw")
"""Search structures of an index: exact (brute force in memory) or LanceDB's IVF_FLAT / IVF_PQ / IVF_RQ /
IVF_HNSW_SQ."""
ENGINES = ("local", "ray")
"""Who runs pooled-feature extraction."""
