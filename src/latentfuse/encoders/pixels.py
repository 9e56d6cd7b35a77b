"""``pixels:SIZE`` — no network at all: an image becomes its own low-resolution pixels, (3, SIZE, SIZE)
flattened to one float32 row, scaled to [-1, 1].

What it is for: a student that learns from raw pixels (DIME-FM's small CNN, ``methods/students.py``) is
trained on the same cached-feature path as everything else — the feature store *is* the decoded-image
cache, so JPEGs are decoded and resized once, not once per epoch. SIZE defaults to 96 (96² × 3 = 27,648
values, 54 KiB per image in the float16 store). Preprocessing: the TensorFlow-style square center crop of
``size / (size + 32)`` of the shorter edge, as for EfficientNet, bilinear resize.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from . import ENCODERS
from .base import Encoder, empty, make_fingerprint
from .images import ImagePreprocess, load_pixels


class PixelEncoder(Encoder):
    """An image's low-resolution pixels as one flat row: the input of pixel-level students."""

    modality = "image"

    def __init__(self, size: int = 96) -> None:
        if not 16 <= size <= 512:
            raise ConfigError(f"pixels:{size}: the size must be between 16 and 512 pixels")
        self.size = size
        self.name = f"pixels:{size}"
        self.dim = 3 * size * size
        self.preprocess = ImagePreprocess(size=(size, size), crop_mode="tf", crop_pct=size / (size + 32),
                                          interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3)

    @cached_property
    def fingerprint(self) -> str:
        return make_fingerprint("pixels", "none", self.preprocess.as_dict())

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), 3·size²): channel-major (C, H, W) pixels, flattened."""
        if len(batch) == 0:
            return empty(self.dim)
        return load_pixels(list(batch), self.preprocess).reshape(len(batch), self.dim)


@ENCODERS.register("pixels", help="an image's own pixels at low resolution (pixels:SIZE, default 96), flattened: "
                                  "the input of pixel students")
def pixels(size: str = "96") -> PixelEncoder:
    try:
        value = int(size)
    except ValueError:
        raise ConfigError(f"pixels:{size}: the size must be a whole number of pixels, e.g. pixels:96") from None
    return PixelEncoder(value)
