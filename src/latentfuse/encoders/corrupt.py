"""Input corruptions for robustness evaluation, applied to the *raw input* before a frozen encoder.

``CorruptedEncoder(base, kind, severity, seed)`` corrupts each item, then runs ``base``. Its fingerprint is
a digest of the base's and the corruption's, so the feature store caches corrupted features apart from clean ones (and
from other severities and seeds), and a second evaluation encodes nothing. Each item's noise is seeded by
``(seed, the item's content)``: the same item gets the same corruption in every batch and every run, and
different seeds give independent draws.

Severities 1–3 (ImageNet-C style: mild, medium, strong):

============== =============================================== ==================
kind           what                                            severity 1 / 2 / 3
============== =============================================== ==================
gaussian-noise i.i.d. Gaussian pixel noise, σ in 0–255 units   10 / 25 / 50
blur           Gaussian blur (Pillow), radius in pixels          1 /  2 /  4
jpeg           re-encode as JPEG at quality                     30 / 15 /  5
low-resolution downscale by a factor, then back up (bilinear)    2 /  4 /  8
word-dropout   each word dropped with probability            0.1 / 0.25 / 0.5
typos          each letter swapped/deleted/replaced with prob 0.03 / 0.08 / 0.15
============== =============================================== ==================

``feature-noise`` (Gaussian noise on cached features, σ = 0.1 / 0.25 / 0.5 × each dimension's std) needs
no encoder: see :func:`feature_noise`.
"""
from __future__ import annotations

import hashlib
import io
import string
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageFilter

from ..errors import ConfigError
from .base import Encoder
from .images import load_image
from .transformed import TransformedEncoder

IMAGE_SEVERITY = {"gaussian-noise": (10.0, 25.0, 50.0), "blur": (1.0, 2.0, 4.0), "jpeg": (30, 15, 5),
                  "low-resolution": (2, 4, 8)}
TEXT_SEVERITY = {"word-dropout": (0.1, 0.25, 0.5), "typos": (0.03, 0.08, 0.15)}
FEATURE_SEVERITY = (0.1, 0.25, 0.5)
MODALITY_OF = {**{k: "image" for k in IMAGE_SEVERITY}, **{k: "text" for k in TEXT_SEVERITY}}
SEVERITIES = (1, 2, 3)


def item_rng(seed: int, item: Any) -> np.random.Generator:
    """A generator seeded by ``seed`` and the item's content (text, file path, or pixels)."""
    h = hashlib.blake2b(str(seed).encode(), digest_size=8)
    h.update(item.tobytes() if isinstance(item, np.ndarray) else str(item).encode())
    return np.random.default_rng(int.from_bytes(h.digest(), "little"))


def corrupt_image(image: Image.Image, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB image corrupted → uint8 (H, W, 3)."""
    level = IMAGE_SEVERITY[kind][severity - 1]
    if kind == "gaussian-noise":
        pixels = np.asarray(image, dtype=np.float32)
        return np.clip(pixels + rng.normal(0.0, level, pixels.shape), 0, 255).astype(np.uint8)
    if kind == "blur":
        return np.asarray(image.filter(ImageFilter.GaussianBlur(radius=level)))
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(level))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return np.asarray(decoded.convert("RGB"))
    small = image.resize((max(1, image.width // int(level)), max(1, image.height // int(level))), Image.BILINEAR)
    return np.asarray(small.resize(image.size, Image.BILINEAR))


def corrupt_text(text: str, kind: str, severity: int, rng: np.random.Generator) -> str:
    """One string corrupted (never empty: word dropout keeps at least one word)."""
    level = TEXT_SEVERITY[kind][severity - 1]
    if kind == "word-dropout":
        words = text.split()
        if not words:
            return text
        kept = [w for w in words if rng.random() >= level]
        return " ".join(kept) if kept else words[int(rng.integers(len(words)))]
    out: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < level:
            action = int(rng.integers(3))
            if action == 0 and i + 1 < len(chars):  # swap with the next character
                out += [chars[i + 1], c]
                i += 2
                continue
            if action == 1:  # delete
                i += 1
                continue
            c = string.ascii_lowercase[int(rng.integers(26))]  # replace
        out.append(c)
        i += 1
    return "".join(out) or text


def feature_noise(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Cached features plus Gaussian noise of σ = level × each dimension's std (float32)."""
    x = np.asarray(x, dtype=np.float32)
    sigma = FEATURE_SEVERITY[severity - 1] * x.std(axis=0, keepdims=True)
    return x + np.random.default_rng(seed).normal(size=x.shape).astype(np.float32) * sigma


def check(kind: str, severity: int) -> None:
    if kind not in MODALITY_OF and kind != "feature-noise":
        raise ConfigError(f"unknown corruption {kind!r}; corruptions: {', '.join([*MODALITY_OF, 'feature-noise'])}")
    if severity not in SEVERITIES:
        raise ConfigError(f"corruption severity must be one of {SEVERITIES}, got {severity}")


class CorruptedEncoder(TransformedEncoder):
    """``base`` run on corrupted inputs; cached apart from clean features by its fingerprint."""

    def __init__(self, base: Encoder, kind: str, severity: int, seed: int) -> None:
        check(kind, severity)
        if MODALITY_OF.get(kind) != base.modality:
            raise ConfigError(f"corruption {kind!r} is for {MODALITY_OF.get(kind, 'features')} inputs; "
                              f"{base.name} encodes {base.modality}")
        self.kind, self.severity, self.seed = kind, severity, seed
        apply: Callable[[Any], Any]
        if base.modality == "image":
            def apply(item: Any) -> Any:
                return corrupt_image(load_image(item), kind, severity, item_rng(seed, item))
        else:
            def apply(item: Any) -> Any:
                return corrupt_text(str(item), kind, severity, item_rng(seed, item))
        super().__init__(base, f"{kind}-s{severity}-seed{seed}", apply)
