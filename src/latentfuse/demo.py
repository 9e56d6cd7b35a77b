"""The embedded default job behind ``latentfuse demo`` / ``make demo``.

It trains FuseMix on the packaged frozen encoders (EfficientNet-Lite0+1+2 images, all-MiniLM-L6-v2 text)
and compares it with the training-free baselines on the same cached features. Data, first found wins:
``$LATENTFUSE_DEMO_DATA`` (any source spec); a local copy of Flickr8k (where the ``flickr8k`` source looks:
``$LATENTFUSE_FLICKR8K``, the datasets cache, ``shared/data/flickr8k`` beside the checkout); Flickr8k fetched
once from the Hugging Face Hub when the machine is online; Debian's Fashion-MNIST (installed by ``make demo``)
with one caption per class, where image→text R@1 is zero-shot accuracy. Train/val use at most 3,000 images
(``DEMO_TRAIN_IMAGES``) so a first run, feature extraction included, takes minutes.
"""
from __future__ import annotations

import os
from pathlib import Path

from .config import DataConfig, RunConfig
from .config.recipes import load_recipe
from .data._flickr8k_fetch import candidates, offline
from .errors import DataError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# The first 3,000 of Flickr8k's 6,000 training images (and all of val/test): features extract in about
# 3 minutes on 2 cores instead of 5. `latentfuse run configs/flickr8k.yaml` uses them all.
DEMO_TRAIN_IMAGES = 3000


def demo_source() -> DataConfig:
    if os.environ.get("LATENTFUSE_DEMO_DATA"):
        return DataConfig(source=os.environ["LATENTFUSE_DEMO_DATA"])
    local = next((c for c in candidates() if (c / "captions.tsv").exists()), None)
    if local is not None:
        return DataConfig(source=f"flickr8k:{local}", limit=DEMO_TRAIN_IMAGES)
    if not offline():
        return DataConfig(source="flickr8k", limit=DEMO_TRAIN_IMAGES)  # fetched once into the cache
    if Path(FASHION_MNIST_DIR).is_dir():
        return DataConfig(source="fashion-mnist", limit=DEMO_TRAIN_IMAGES)
    raise DataError("no demo data: no local Flickr8k copy, the machine is offline, and Debian's "
                    "dataset-fashion-mnist is not installed; run `make demo` (it installs the latter) "
                    "or set LATENTFUSE_DEMO_DATA to a source spec such as flickr8k:DIR")


def demo_config(out: str = "runs/demo") -> RunConfig:
    """The ``demo`` recipe on the data :func:`demo_source` finds, saved to ``out``."""
    config = load_recipe("demo", RunConfig)
    config.data, config.out = demo_source(), out
    return config
