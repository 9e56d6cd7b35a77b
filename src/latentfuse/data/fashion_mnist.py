"""``fashion-mnist[:DIR]`` — Fashion-MNIST as an image–text set with one caption per class.

Default DIR is where Debian's ``dataset-fashion-mnist`` installs it. Splits: ``train`` = the first
50,000 images of the train file, ``val`` = its last 10,000 (the last sixth, for smaller train files),
``test`` = the 10,000 of t10k. Images are 28x28 uint8 arrays; the text side has the ten class captions
(``CAPTIONS``), and each image is paired with its class's caption, which makes zero-shot
classification a retrieval problem. ``SplitData.labels`` gives the class name (``CLASS_NAMES``) of
every image and of every caption.

Ids: images ``<split>/<NNNNN>`` (index within the split, e.g. ``test/00042``), captions
``class/<k>`` (k = label 0-9).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils.hashing import digest, file_digest
from . import SOURCES
from ._common import source_path
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .base import Item, Side, Source, SplitData

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CAPTIONS = (
    "a photo of a t-shirt.", "a photo of trousers.", "a photo of a pullover.", "a photo of a dress.",
    "a photo of a coat.", "a photo of a sandal.", "a photo of a shirt.", "a photo of a sneaker.",
    "a photo of a bag.", "a photo of an ankle boot.",
)  # fmt: skip
FILES = {  # file set -> (images, labels); "train" feeds the train and val splits
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "val", "test")
_VERSION = "fashion-mnist/1"  # bump when the split rule or captions change: it is part of the fingerprint


@SOURCES.register("fashion-mnist")
class FashionMNIST(Source):
    """Fashion-MNIST 28x28 images with one caption per class: fashion-mnist[:DIR]."""

    name = "fashion-mnist"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)  # nothing to skip: a corrupt IDX file always raises
        self.root = source_path(root, self.name, "dir") if root else DEFAULT_DIR
        if not self.root.is_dir():
            raise DataError(
                f"fashion-mnist: directory {self.root} not found; install Debian's package "
                "(`apt-get install dataset-fashion-mnist`) or pass fashion-mnist:DIR"
            )
        self.files = {key: tuple(self._find(stem) for stem in stems) for key, stems in FILES.items()}

    @property
    def spec(self) -> str:
        return self.name if self.root == DEFAULT_DIR else f"{self.name}:{self.root}"

    @property
    def fingerprint(self) -> str:
        paths = sorted(p for pair in self.files.values() for p in pair)
        return digest(_VERSION, [(p.name, _cached_digest(p)) for p in paths])

    def splits(self) -> list[str]:
        return list(SPLITS)

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        images, labels, origin, start = self._arrays(split)
        texts = [Item(f"class/{k}", text, f"fashion-mnist class {k}") for k, text in enumerate(CAPTIONS)]
        items: list[Item] = []
        pairs: list[tuple[str, str]] = []
        names: dict[str, str] = {t.id: CLASS_NAMES[k] for k, t in enumerate(texts)}
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            item_id = f"{split}/{i:05d}"
            items.append(Item(item_id, image, f"{origin}[{start + i}]"))
            pairs.append((item_id, f"class/{label}"))
            names[item_id] = CLASS_NAMES[label]
        return SplitData(split, self.sides, {"image": items, "text": texts}, pairs, names)

    def _find(self, stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (self.root / name).is_file():
                return self.root / name
        raise DataError(
            f"fashion-mnist: {self.root} has no {stem}.gz (nor {stem}); is this a Fashion-MNIST directory?"
        )

    def _arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, str, int]:
        """(images, labels, images file name, index of the first image in that file) for a split."""
        image_path, label_path = self.files["test" if split == "test" else "train"]
        images, labels = read_idx(image_path, IMAGES_MAGIC), read_idx(label_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise DataError(
                f"{image_path.name} has {len(images)} images but {label_path.name} has {len(labels)} labels"
            )
        if images.shape[1:] != (28, 28):
            rows, cols = images.shape[1:]
            raise DataError(f"{image_path.name}: images are {rows}x{cols}; expected 28x28")
        if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
            bad = int(np.argmax(labels >= len(CLASS_NAMES)))
            raise DataError(f"{label_path.name}: label {int(labels[bad])} at index {bad}; expected 0-9")
        if split == "test":
            return images, labels, image_path.name, 0
        cut = len(images) - len(images) // 6  # 50,000 of 60,000
        if split == "train":
            return images[:cut], labels[:cut], image_path.name, 0
        return images[cut:], labels[cut:], image_path.name, cut


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _cached_digest(path: Path) -> str:
    """Content hash, computed once per process per (path, size, mtime): hashing 30 MB each call is waste."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]
