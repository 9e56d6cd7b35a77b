"""Frozen encoders: a registry of names (``efficientnet-lite0``, ``minilm-l6``, ``hf:ID``...) → Encoder.

What each returns (float32, one row per input):

* ``efficientnet-lite0`` (1280): average-pooled last conv features, raw (not normalised);
* ``minilm-l6`` (384): all-MiniLM-L6-v2 mean pooling, L2-normalised, as its modules.json says;
* ``e5-small`` / ``e5-small:query`` (384): multilingual-e5-small with the passage / query prefix, normalised;
* ``hf:ID[#cls][#normalize]``: mean (default) or CLS pooled last hidden state, raw unless ``#normalize``;
* ``st:ID``: whatever ``SentenceTransformer.encode`` gives for that model;
* ``timm:NAME[@FILE]``: timm's pooled pre-classifier features, raw;
* ``A+B[+...]``: an ensemble of encoders of one modality, each member L2-normalised, then concatenated
  (``ensemble.py``; e.g. ``efficientnet-lite0+efficientnet-lite2``, ``minilm-l6+e5-small``).

The torch encoders (all but ``e5-small``, which runs its own int4 C engine, ``glove-6b-50d`` and ``st:``) run on
the runtime's backend: torch, or ONNX Runtime on a graph exported once and cached (``onnx_backend.py``).

Building an encoder is cheap (weights load on the first ``encode``); ``dim`` is read from configs.
A bad input raises :class:`~latentfuse.encoders.base.BadItemError` with its position in the batch;
a missing package or weights file raises :class:`~latentfuse.encoders.base.EncoderUnavailableError`.
"""
from __future__ import annotations

from functools import lru_cache

from ..registry import Registry
from ..utils.runtime import CPU, Runtime
from .base import BadItemError, Encoder, EncoderUnavailableError
from .ensemble import Ensemble, is_ensemble, member_specs

ENCODERS: Registry[Encoder] = Registry("encoder", __name__, "latentfuse.encoders")


@lru_cache(maxsize=8)
def build_encoder(spec: str, runtime: Runtime = CPU) -> Encoder:
    """Build (once per process and runtime) the encoder a spec names, running on ``runtime``'s device at
    its precision; weights load lazily on first encode. Each runtime has its own instance (its own copy of
    the weights on its device), so moving one model never moves another's encoder. ``A+B`` builds an
    ensemble whose members are the encoders ``A`` and ``B`` would build alone."""
    if is_ensemble(spec):
        return Ensemble([build_encoder(member, runtime) for member in member_specs(spec)])
    return ENCODERS.build(spec).use(runtime)


__all__ = ["ENCODERS", "BadItemError", "Encoder", "EncoderUnavailableError", "Ensemble", "build_encoder"]
