"""``imagefolder:DIR`` — a labelled image set laid out as one sub-folder per class (torchvision style).

Layouts:

* ``DIR/<class>/<image>`` — every image is in the single split ``all`` (nothing says which images are for
  training, so we do not guess);
* ``DIR/{train,val,test}/<class>/<image>`` — the top-level folders are the splits. Any other top-level
  folder next to them is an error (it would be a class folder in the wrong place).

The folder name is the class name, recorded in ``SplitData.labels`` for every image. The text side holds
one caption per class (``"a photo of a {name}."``, underscores in the folder name read as spaces), and
each image is paired with its class's caption, exactly as ``fashion-mnist`` does, so zero-shot
classification and retrieval see the same shape of data. The class list is the union over all splits, so
captions (and their cached features) are the same in every split.

Images are the files under a class folder (recursively) whose extension is an image extension
(``IMAGE_EXTENSIONS``); hidden files and other files (``.txt``, ``.json``) are ignored. A file that is
named like an image but cannot be decoded fails at *encode* time with the file's path (or is skipped and
recorded with ``--skip-bad``), through the encoders' ``BadItemError`` path. A class folder without any
image is a DataError naming the folder (with ``skip_bad``: that class is dropped from the split and
recorded in ``SplitData.skipped``).

Ids: images ``<path relative to DIR>`` in POSIX form (``train/cat/001.jpg``), captions ``class/<name>``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..utils.hashing import digest
from . import SOURCES
from ._common import BadRows, content_fingerprint, source_path
from .base import Item, Side, Source, SplitData

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff",
                              ".webp", ".gif"})
SPLIT_DIRS = ("train", "val", "test")
NO_SPLIT = "all"
CAPTION = "a photo of a {}."
_VERSION = "imagefolder/1"  # bump when ids, captions or the layout rule change: part of the fingerprint


def prompt_name(class_name: str) -> str:
    """How a class folder name reads in a sentence: ``golden_retriever`` → ``golden retriever``."""
    return " ".join(class_name.replace("_", " ").split())


@SOURCES.register("imagefolder")
class ImageFolder(Source):
    """Labelled images, one sub-folder per class (optional train/val/test level): imagefolder:DIR."""

    name = "imagefolder"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        self.root = source_path(root, self.name, "dir")
        if not self.root.is_dir():
            raise DataError(f"imagefolder: directory {self.root} not found")
        self._layout = _layout(self.root)  # split name -> directory holding the class folders
        self._classes: list[str] | None = None
        self._files: dict[str, list[tuple[str, list[Path]]]] = {}  # listed once: fingerprint + load need it

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.root}"

    @property
    def fingerprint(self) -> str:
        images = [path for split in self._layout for _, paths in self._class_files(split) for path in paths]
        return digest(_VERSION, content_fingerprint(self.name, [], images),
                      [str(p.relative_to(self.root)) for p in sorted(images)])

    def splits(self) -> list[str]:
        return list(self._layout)

    def classes(self) -> list[str]:
        """Sorted class names over every split (the caption list)."""
        if self._classes is None:
            names = {name for split in self._layout for name in _subdirs(self._layout[split])}
            self._classes = sorted(names)
        return self._classes

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        bad = BadRows(self.skip_bad)
        captions = [Item(f"class/{name}", CAPTION.format(prompt_name(name)), f"class folder {name!r}")
                    for name in self.classes()]
        labels = {item.id: name for item, name in zip(captions, self.classes())}
        images: list[Item] = []
        pairs: list[tuple[str, str]] = []
        for name, paths in self._class_files(split):
            folder = self._layout[split] / name
            if not paths:
                bad.report(f"class/{name}", f"imagefolder: class folder {folder} has no image files "
                                            f"(expected {', '.join(sorted(IMAGE_EXTENSIONS))})")
                continue
            for path in paths:
                item_id = path.relative_to(self.root).as_posix()
                images.append(Item(item_id, path, str(path)))
                pairs.append((item_id, f"class/{name}"))
                labels[item_id] = name
        if not images:
            raise DataError(f"imagefolder: split {split!r} ({self._layout[split]}) has no images")
        return SplitData(split, self.sides, {"image": images, "text": captions}, pairs, labels, bad.skipped)

    def _class_files(self, split: str) -> list[tuple[str, list[Path]]]:
        """(class name, sorted image files) for each class folder of a split."""
        if split not in self._files:
            base = self._layout[split]
            self._files[split] = [(name, images_under(base / name)) for name in _subdirs(base)]
        return self._files[split]


def _layout(root: Path) -> dict[str, Path]:
    """Split name → folder of class folders; raises when the folder holds no classes or mixes layouts."""
    folders = _subdirs(root)
    if not folders:
        raise DataError(f"imagefolder: {root} has no sub-folders; expected one folder per class "
                        "(DIR/<class>/<image>) or split folders (DIR/train/<class>/<image>)")
    split_dirs = [f for f in folders if f in SPLIT_DIRS]
    if not split_dirs:
        return {NO_SPLIT: root}
    others = [f for f in folders if f not in SPLIT_DIRS]
    if others:
        raise DataError(f"imagefolder: {root} mixes split folders ({', '.join(split_dirs)}) with other "
                        f"folders ({', '.join(others)}); put every class folder inside a split folder")
    layout = {split: root / split for split in SPLIT_DIRS if split in split_dirs}
    for path in layout.values():
        if not _subdirs(path):
            raise DataError(f"imagefolder: split folder {path} has no class sub-folders")
    return layout


def _subdirs(path: Path) -> list[str]:
    """Names of the visible sub-folders, sorted (hidden ones such as .ipynb_checkpoints are not classes)."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise DataError(f"imagefolder: cannot list {path} ({exc.strerror or exc})") from None


def images_under(folder: Path) -> list[Path]:
    """Image files under a folder, recursively, hidden files and folders skipped, in a stable order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return found
