"""Augmented views of images for distillation: DIME-FM's student transform, applied before the student's
frozen encoder so each view is encoded once and cached like any feature.

The released transform (``Training/datasets/build.py``, ``build_transform``): Resize(256, bicubic) →
RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3), bilinear) → RandomHorizontalFlip(0.5). Here view
``k`` of an image is one draw of it, seeded by (seed, k, the item), so the same view is the same pixels in every
run — a fixed set of views, where the released loader draws a fresh one every epoch.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from .base import Encoder
from .corrupt import item_rng
from .images import load_image
from .transformed import TransformedEncoder

SCALE, RATIO, SIZE, RESIZE = (0.08, 1.0), (3 / 4, 4 / 3), 224, 256


def crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: (left, top, w, h) of a crop covering SCALE of the area at an
    aspect ratio drawn log-uniformly from RATIO; after 10 misses, the central crop at the nearest allowed ratio."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    ratio = width / height
    if ratio < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif ratio > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def augmented_view(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """One draw of the released transform → uint8 (SIZE, SIZE, 3)."""
    scale = RESIZE / min(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    left, top, w, h = crop_box(image.width, image.height, rng)
    view = image.resize((SIZE, SIZE), Image.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(view)


class AugmentedEncoder(TransformedEncoder):
    """``base`` run on view ``view`` (1, 2, …) of each image; cached apart from the clean features and from the
    other views."""

    def __init__(self, base: Encoder, view: int, seed: int = 0) -> None:
        if base.modality != "image":
            raise ValueError(f"augmented views are images; {base.name} encodes {base.modality}")

        def apply(item: Any) -> np.ndarray:
            return augmented_view(load_image(item), item_rng(seed * 1_000_003 + view, item))

        super().__init__(base, f"dime-view{view}-seed{seed}", apply)
