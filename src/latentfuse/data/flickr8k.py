"""``flickr8k:DIR`` — Flickr8k images and their five captions each, in any of three common layouts.

``flickr8k`` without a folder finds a local copy, or fetches the Hugging Face dataset into the cache once when
the machine is online (``_flickr8k_fetch``); offline and without a copy it says where to put one.

Layouts, tried in this order (the first whose caption file exists wins):

1. latentfuse / shared copy: ``images/``, ``captions.tsv`` (``image, caption_index, caption``),
   ``splits.json`` (``{"train": [...], "val": [...], "test": [...]}``).
2. Kaggle: ``Images/`` (or ``images/``) + ``captions.txt`` (``image,caption`` CSV). Split lists
   ``Flickr_8k.{train,dev,test}Images.txt`` are used when present; otherwise a stable split by a hash
   of each file name (75/12.5/12.5%, see ``hashed_splits``).
3. Original: ``Flickr8k.token.txt`` (``<image>#<k><TAB><caption>``) + the three split lists, images in
   ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/``, ``images/`` or ``Images/``. Token lines of an image
   that has no file *and* is in no split are ignored (the official file has one such image).

The text files may also sit in a ``Flickr8k_text/`` subdirectory. Split ``dev`` is called ``val``.
Ids: image = file name, caption = ``<file>#<k>``. Pairs link every image of a split to each of its
captions; order = split-file order, then caption index.

Bad data raises a DataError naming the file and line: an empty or duplicate caption, a split entry
whose image has no captions or no file (files are checked at ``load``). With ``skip_bad`` those are
dropped instead and recorded in ``SplitData.skipped`` as ``(id, message)`` — the caption id for a
caption, the image id for an image (its captions go with it, recorded once). Malformed lines,
headers, split files and unknown layouts always raise: nothing sensible could be kept from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from . import SOURCES
from ._common import BadRows, content_fingerprint, image_files, source_path
from ._flickr8k_fetch import locate
from ._flickr8k_files import (
    SPLIT_NAMES,
    Captions,
    Splits,
    hashed_splits,
    read_captions_tsv,
    read_captions_txt,
    read_split_lists,
    read_splits_json,
    read_token_file,
)
from .base import Item, Side, Source, SplitData

SPLIT_LISTS = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
TEXT_SUBDIRS = ("Flickr8k_text",)  # besides DIR itself
ORIGINAL_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "images", "Images")
KAGGLE_IMAGE_DIRS = ("Images", "images")


@dataclass(frozen=True)
class Layout:
    kind: str  # "tsv" | "kaggle" | "original"
    captions: Path
    images: Path
    splits_json: Path | None = None
    split_lists: tuple[tuple[str, Path], ...] = ()  # (split, file); empty with splits_json or hashed

    def text_files(self) -> list[Path]:
        splits = [self.splits_json] if self.splits_json else [p for _, p in self.split_lists]
        return [self.captions, *splits]


@SOURCES.register("flickr8k")
class Flickr8k(Source):
    """Flickr8k images with 5 captions each: flickr8k:DIR (shared, Kaggle or original layout)."""

    name = "flickr8k"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        self.root = source_path(root, "flickr8k", "dir") if root else locate().resolve()
        self.layout = detect_layout(self.root)
        self._splits: Splits | None = None
        self._captions: Captions | None = None

    @property
    def spec(self) -> str:
        return f"flickr8k:{self.root}"

    @property
    def fingerprint(self) -> str:
        layout = self.layout
        return content_fingerprint(f"flickr8k/{layout.kind}", layout.text_files(), image_files(layout.images))

    def splits(self) -> list[str]:
        if self.layout.splits_json is None:
            return list(SPLIT_NAMES)  # split lists and the hashed split always have these three
        return list(self._get_splits().images)

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        splits, captions = self._get_splits(), self._get_captions()
        images_rel = self._rel(self.layout.images)
        bad = BadRows(self.skip_bad)
        images: list[Item] = []
        texts: list[Item] = []
        pairs: list[tuple[str, str]] = []
        for index, image in enumerate(splits.images[split]):
            held = captions.bad.get(image, [])
            bad.skipped.extend(held)  # bad captions, already reported when skip_bad is on
            good = captions.of(image)
            path = self.layout.images / image
            if not good:
                why = f"which has no captions in {captions.file}"
                why = "all of whose captions were skipped" if held else why
            elif not path.exists():
                why = f"which is not in {images_rel}/ (no file {path})"
            else:
                why = ""
            if why:  # describe() only on error: it may scan the split file for the line number
                bad.report(image, f"{splits.describe(split, index)}, {why}")
                continue
            images.append(Item(image, path, f"{images_rel}/{image}"))
            for k, text, line in good:
                caption_id = f"{image}#{k}"
                texts.append(Item(caption_id, text, f"{captions.file}:{line}"))
                pairs.append((image, caption_id))
        return SplitData(split, self.sides, {"image": images, "text": texts}, pairs, {}, bad.skipped)

    # -- parsing, once per source ---------------------------------------------------------------

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _get_splits(self) -> Splits:
        if self._splits is None:
            layout = self.layout
            if layout.splits_json is not None:
                self._splits = read_splits_json(layout.splits_json, self._rel(layout.splits_json))
            elif layout.split_lists:
                self._splits = read_split_lists({s: (p, self._rel(p)) for s, p in layout.split_lists})
            else:
                self._splits = hashed_splits(self._get_captions())
        return self._splits

    def _get_captions(self) -> Captions:
        if self._captions is None:
            layout = self.layout
            captions = Captions(self._rel(layout.captions), self.skip_bad)
            if layout.kind == "tsv":
                read_captions_tsv(layout.captions, captions.file, captions)
            elif layout.kind == "kaggle":
                read_captions_txt(layout.captions, captions.file, captions)
            else:
                in_split = {i for images in self._get_splits().images.values() for i in images}

                def stray(image: str) -> bool:
                    return image not in in_split and not (layout.images / image).exists()

                read_token_file(layout.captions, captions.file, captions, ignore=stray)
            self._captions = captions
        return self._captions


def detect_layout(root: Path) -> Layout:
    """Find which layout ``root`` holds; if none, say what was looked for and what is there."""
    if not root.is_dir():
        raise DataError(f"flickr8k: {root} is {'not a directory' if root.exists() else 'not found'}")
    if (root / "captions.tsv").is_file():
        missing = [n for n in ("images/", "splits.json") if not (root / n.rstrip("/")).exists()]
        if missing:
            raise DataError(
                f"flickr8k {root}: has captions.tsv but no {' or '.join(missing)}; this layout needs "
                "images/, captions.tsv and splits.json"
            )
        return Layout("tsv", root / "captions.tsv", root / "images", splits_json=root / "splits.json")
    if (root / "captions.txt").is_file():
        images = _first_dir(root, KAGGLE_IMAGE_DIRS, "captions.txt")
        return Layout("kaggle", root / "captions.txt", images, split_lists=_split_lists(root, required=False))
    token = _find_text(root, "Flickr8k.token.txt")
    if token is not None:
        images = _first_dir(root, ORIGINAL_IMAGE_DIRS, token.name)
        return Layout("original", token, images, split_lists=_split_lists(root, required=True))
    present = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "") if present else "nothing"
    raise DataError(
        f"flickr8k {root}: no known layout. Looked for captions.tsv + images/ + splits.json; "
        "captions.txt + Images/ (Kaggle); Flickr8k.token.txt + Flickr_8k.{train,dev,test}Images.txt + "
        f"Flicker8k_Dataset/ (original, text files also in Flickr8k_text/). Found: {shown}"
    )


def _find_text(root: Path, name: str) -> Path | None:
    for path in (root / name, *(root / sub / name for sub in TEXT_SUBDIRS)):
        if path.is_file():
            return path
    return None


def _first_dir(root: Path, names: tuple[str, ...], found: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    looked = ", ".join(n + "/" for n in names)
    raise DataError(f"flickr8k {root}: has {found} but no image directory; looked for {looked}")


def _split_lists(root: Path, required: bool) -> tuple[tuple[str, Path], ...]:
    """All three official split lists, or (when not required) none of them; a partial set is an error."""
    found = {split: _find_text(root, name) for split, name in SPLIT_LISTS.items()}
    missing = [SPLIT_LISTS[s] for s, p in found.items() if p is None]
    if not missing:
        return tuple((s, p) for s, p in found.items() if p is not None)
    if required or len(missing) < len(SPLIT_LISTS):
        raise DataError(
            f"flickr8k {root}: missing split list(s) {', '.join(missing)} "
            f"(looked in {root} and Flickr8k_text/)"
        )
    return ()
