"""Test doubles with known answers: a deterministic encoder that counts its work, and a synthetic source."""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from latentfuse.data import Item, Side, Source, SplitData
from latentfuse.encoders import ENCODERS
from latentfuse.encoders.base import BadItemError, Encoder
from latentfuse.encoders.images import load_image


class FakeTextEncoder(Encoder):
    """Embeds a string as the sum of fixed pseudo-random vectors of its words (a known answer: texts
    that share words are close, and a word-for-word cipher of a text is a linear map away).

    Appends the number of items of every call to $FAKE_ENCODER_LOG (one line per call), so a test can
    prove that cached runs do no encoder work; sleeps $FAKE_ENCODER_DELAY seconds per call, so a test
    can kill it mid-way. Strings starting with "BAD" raise BadItemError like an unreadable image would.
    """

    modality = "text"

    def __init__(self, dim: str = "16") -> None:
        self.dim = int(dim)
        self.name = f"fake-text:{dim}"

    @property
    def fingerprint(self) -> str:
        return f"fake-text-{self.dim}"

    def encode(self, batch):
        for i, text in enumerate(batch):
            if str(text).startswith("BAD"):
                raise BadItemError(i, text, "unreadable test item")
        log = os.environ.get("FAKE_ENCODER_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write(f"{len(batch)}\n")
        delay = float(os.environ.get("FAKE_ENCODER_DELAY", "0"))
        if delay:
            time.sleep(delay)
        return np.stack([fake_embed(str(t), self.dim) for t in batch]).astype(np.float32)


    def taps(self):
        from latentfuse.encoders.base import Tap

        return {"words": Tap("words", self.dim, None, "one token per word: its fixed random vector")}

    def encode_taps(self, batch, taps):
        self.check_taps(taps)
        self.encode(batch)  # same bad-item rules, call log and delay as encode
        return {"words": [np.stack([vector(w, self.dim) for w in str(t).split()] or [np.zeros(self.dim)])
                          .astype(np.float32) for t in batch]}


def fake_embed(text: str, dim: int = 16) -> np.ndarray:
    return np.sum([vector(word, dim) for word in text.split()], axis=0)


def vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


if "fake-text" not in ENCODERS:
    ENCODERS.register("fake-text")(FakeTextEncoder)


def encoder_calls(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def recorded_bad(store: Path) -> list[str]:
    """The reasons of every item the store recorded as bad (``--skip-bad``), sorted."""
    return sorted(reason for p in Path(store).rglob("shard-*.bad.json") for reason in json.loads(p.read_text()).values())


def committed_shards(store: Path, under: str = "") -> list[Path]:
    """The feature store's committed shards (a shard counts once its keys file is there), in ``under`` only
    (e.g. ``tap-words``) when given, never the reference records."""
    return [p for p in Path(store).rglob("shard-*.keys.npy")
            if "refs" not in p.parts and (not under or p.parent.name == under)]


class SyntheticSource(Source):
    """n text pairs per split ("a-<i>" ↔ "b-<i>"); ``bad`` lists row numbers whose text_a is unreadable."""

    name = "synthetic"
    sides = (Side("text_a", "text"), Side("text_b", "text"))

    def __init__(self, n: int = 100, bad: tuple[int, ...] = (), skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        self.n, self.bad = n, bad

    @property
    def spec(self) -> str:
        return f"synthetic:{self.n}"

    @property
    def fingerprint(self) -> str:
        return f"synthetic-{self.n}-{self.bad}"

    def splits(self) -> list[str]:
        return ["train", "test"]

    def load(self, split: str) -> SplitData:
        a = [Item(f"{split}-a{i}", ("BAD " if i in self.bad else "") + f"{split} a {i}", f"synthetic:{i + 2}")
             for i in range(self.n)]
        b = [Item(f"{split}-b{i}", f"{split} b {i}") for i in range(self.n)]
        return SplitData(split, self.sides, {"text_a": a, "text_b": b},
                         [(x.id, y.id) for x, y in zip(a, b)])


# ---------------------------------------------------------------- encoders whose answers are known by colour / keyword
# ``fake-rgb`` embeds an image as its mean colour (r, g, b); ``fake-keywords:red,green,blue`` embeds a text as
# the counts of those words: a frozen model over the two is a joint space by construction.
class FakeRGBEncoder(Encoder):
    """Mean colour of the image in [0, 1]; undecodable files raise BadItemError like the real encoders."""

    modality = "image"
    dim = 3
    name = "fake-rgb"
    calls: ClassVar[list[int]] = []  # items per encode call, so a test can prove the cache was used

    @property
    def fingerprint(self) -> str:
        return "fake-rgb-1"

    def encode(self, batch):
        FakeRGBEncoder.calls.append(len(batch))
        return np.stack([np.asarray(load_image(item, i), dtype=np.float32).mean(axis=(0, 1)) / 255.0
                         for i, item in enumerate(batch)])


class FakeKeywordEncoder(Encoder):
    """Counts of each keyword among the words of a text."""

    modality = "text"

    def __init__(self, words: str = "red,green,blue") -> None:
        self.words = words.split(",")
        self.dim = len(self.words)
        self.name = f"fake-keywords:{words}"

    @property
    def fingerprint(self) -> str:
        return f"fake-keywords-{','.join(self.words)}"

    def encode(self, batch):
        tokens = [re.findall(r"[a-z]+", str(text).lower()) for text in batch]
        return np.array([[t.count(w) for w in self.words] for t in tokens], dtype=np.float32)


if "fake-rgb" not in ENCODERS:
    ENCODERS.register("fake-rgb")(FakeRGBEncoder)
    ENCODERS.register("fake-keywords")(FakeKeywordEncoder)
