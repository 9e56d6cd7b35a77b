"""``flickr8k-tags:DIR`` — Flickr8k-Tags: a multi-label classification task of one image and ONE of its captions.

Input: an image and one of its five captions (the pairs of ``flickr8k:DIR``, same splits and ids). Labels:
the tags the image's OTHER four captions agree on, so the caption in hand often names them (text alone
suffices) but sometimes does not (only the image shows them). The definition is code, deterministic:

1. A caption *mentions* tag ``t`` when one of its lower-cased words (``[a-z]+``) is one of ``t``'s surface
   forms in ``CANDIDATES`` (a fixed list of concrete, visible nouns with their plurals and near-synonyms:
   ``dog`` ← dog, dogs, puppy, puppies).
2. Pair (image, caption k) has tag ``t`` when **at least 2 of the image's other captions** mention it
   (``AGREE``): one mention is often a passing detail, two are what annotators saw.
3. The vocabulary: the candidates that at least ``MIN_IMAGES`` = 100 **train** images carry at image level
   (≥ 2 of their 5 captions mention them), in descending order of that count (ties by name). It is chosen
   on the train split alone and is the same for every split. On the official Flickr8k split these are 25
   tags (like MM-IMDB's 23 genres): man, dog, person, woman, boy, girl, child, water, grass, shirt, snow,
   ball, field, bike, rock, beach, street, hat, skateboard, mountain, toy, jacket, pool, tree, sand.

Pairs with no tag are kept (an all-zero target is a real answer: none of the frequent nouns is agreed on).
Micro and macro F1 are the metrics, as for MM-IMDB (``eval.classification``).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from . import SOURCES
from .base import Item, SplitData
from .flickr8k import Flickr8k

AGREE = 2
MIN_IMAGES = 100
CANDIDATES: dict[str, tuple[str, ...]] = {
    "dog": ("dog", "dogs", "puppy", "puppies"), "man": ("man", "men"), "woman": ("woman", "women"),
    "boy": ("boy", "boys"), "girl": ("girl", "girls"), "child": ("child", "children", "kid", "kids"),
    "person": ("person", "people"), "baby": ("baby", "babies"), "crowd": ("crowd",),
    "water": ("water",), "grass": ("grass", "grassy"), "snow": ("snow", "snowy"), "sand": ("sand", "sandy"),
    "beach": ("beach",), "ocean": ("ocean", "sea"), "lake": ("lake",), "pool": ("pool",),
    "field": ("field", "fields"), "park": ("park",), "street": ("street", "streets"), "road": ("road",),
    "sidewalk": ("sidewalk",), "mountain": ("mountain", "mountains"), "hill": ("hill", "hills"),
    "rock": ("rock", "rocks", "rocky"), "tree": ("tree", "trees"), "building": ("building", "buildings"),
    "wall": ("wall", "walls"), "fence": ("fence",), "bench": ("bench",), "table": ("table",),
    "ball": ("ball", "balls"), "toy": ("toy", "toys"), "stick": ("stick", "sticks"), "frisbee": ("frisbee",),
    "bike": ("bike", "bikes", "bicycle", "bicycles"), "car": ("car", "cars"), "boat": ("boat", "boats"),
    "motorcycle": ("motorcycle", "motorcycles"), "horse": ("horse", "horses"),
    "skateboard": ("skateboard", "skateboards", "skateboarder"), "shirt": ("shirt", "shirts"),
    "hat": ("hat", "hats"), "jacket": ("jacket", "jackets"), "dress": ("dress", "dresses"),
    "helmet": ("helmet", "helmets"), "camera": ("camera", "cameras"),
}
_FORM_TO_TAG = {form: tag for tag, forms in CANDIDATES.items() for form in forms}


def mentions(caption: str) -> set[str]:
    """The candidate tags a caption names."""
    return {_FORM_TO_TAG[w] for w in re.findall(r"[a-z]+", caption.lower()) if w in _FORM_TO_TAG}


def agreed(captions: Iterable[str], at_least: int = AGREE) -> set[str]:
    """Tags at least ``at_least`` of these captions mention."""
    counts = Counter(tag for caption in captions for tag in mentions(caption))
    return {tag for tag, n in counts.items() if n >= at_least}


def pair_tags(captions: list[str], k: int, vocabulary: tuple[str, ...]) -> tuple[str, ...]:
    """The labels of (image, caption ``k``): vocabulary tags agreed on by the image's other captions."""
    others = agreed(c for j, c in enumerate(captions) if j != k)
    return tuple(tag for tag in vocabulary if tag in others)


def vocabulary(image_captions: Iterable[list[str]], min_images: int = MIN_IMAGES) -> tuple[str, ...]:
    """Candidates carried (≥ ``AGREE`` mentions) by at least ``min_images`` of these images, most frequent first."""
    counts = Counter(tag for captions in image_captions for tag in agreed(captions))
    kept = [tag for tag, n in counts.items() if n >= min_images]
    return tuple(sorted(kept, key=lambda tag: (-counts[tag], tag)))


@SOURCES.register("flickr8k-tags")
class Flickr8kTags(Flickr8k):
    """Flickr8k-Tags: image + one caption → the tags its other captions agree on (flickr8k-tags:DIR)."""

    name = "flickr8k-tags"

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(root, skip_bad=skip_bad)
        self._vocabulary: tuple[str, ...] | None = None

    @property
    def spec(self) -> str:
        return f"flickr8k-tags:{self.root}"

    def vocabulary(self) -> tuple[str, ...]:
        if self._vocabulary is None:
            captions = _captions_by_image(super().load("train"))
            self._vocabulary = vocabulary([[str(item.payload) for item in items] for items in captions.values()],
                                          MIN_IMAGES)
        return self._vocabulary

    def load(self, split: str) -> SplitData:
        data = super().load(split)
        names = self.vocabulary()
        data.tag_names, data.tags = names, {}
        for image, captions in _captions_by_image(data).items():
            texts = [str(item.payload) for item in captions]
            for k, caption in enumerate(captions):
                data.tags[(image, caption.id)] = pair_tags(texts, k, names)
        return data


def _captions_by_image(data: SplitData) -> dict[str, list[Item]]:
    """Each image's caption items, in pair order (the order ``pair_tags`` counts ``k`` in)."""
    texts = {item.id: item for item in data.items["text"]}
    out: dict[str, list[Item]] = {}
    for image, text in data.pairs:
        out.setdefault(image, []).append(texts[text])
    return out
