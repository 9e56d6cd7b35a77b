"""latentfuse: multimodal joint embedding spaces from frozen encoders, cheaply.

    import latentfuse
    model = latentfuse.fit([("photo.jpg", "a dog on the beach"), ...], out="runs/mine")   # train
    model = latentfuse.load("runs/demo")
    model.encode_image(["photo.jpg"]); model.encode_text(["a dog"]); model.similarity(...)
    index = latentfuse.open_index("runs/photos-index")      # built by `latentfuse index`
    index.search(text="a dog on the beach", k=10)

Names are imported on first use, so ``import latentfuse`` (and the CLI) stay light: torch loads only when a
model, an index or training is touched.
"""
from __future__ import annotations

from typing import Any

from .version import __version__

_LAZY = {"JointModel": ("model", "JointModel"), "load": ("model", "load"), "fit": ("job", "fit"),
         "open_index": ("index", "open_index")}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'latentfuse' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


__all__ = ["JointModel", "fit", "load", "open_index", "__version__"]
