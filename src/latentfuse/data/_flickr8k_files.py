"""Parsers for Flickr8k's caption and split files, one per layout, all feeding the same two structures.

Kept apart from the source so each file format's quirks (quoting, ``#k`` suffixes, JSON vs. line
lists) and the line numbers its errors quote live in one place.
"""
from __future__ import annotations

import csv
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from ..errors import DataError
from ._tables import csv_records

SPLIT_NAMES = ("train", "val", "test")
# Deterministic split when a layout ships none: fractions of the official 6000/1000/1000 split.
HASHED_FRACTIONS = (("train", 0.75), ("val", 0.875), ("test", 1.0))


@dataclass
class Captions:
    """Captions per image; with ``skip_bad`` the bad ones are held per image so a split reports its own.

    Good captions are plain ``(text, line)`` tuples: parsing and loading 40k rows has to stay cheap.
    """

    file: str  # display name, relative to the dataset directory
    skip_bad: bool
    by_image: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    bad: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)

    def add(self, image: str, k: int, text: str, line: int) -> None:
        caps = self.by_image.get(image)
        if caps is None:
            caps = self.by_image[image] = {}
            self.first_line[image] = line
        text = text.strip()
        if text and k not in caps:
            caps[k] = (text, line)
        elif not text:
            self._bad(image, k, f"{self.file} line {line}: empty caption for {image!r}")
        else:
            first = caps[k][1]
            where = f"{self.file} line {line}"
            self._bad(image, k, f"{where}: duplicate caption {image}#{k} (first at line {first})")

    def of(self, image: str) -> list[tuple[int, str, int]]:
        """The image's good captions as ``(k, text, line)``, in caption-index order."""
        caps = self.by_image.get(image, {})
        return [(k, *caps[k]) for k in sorted(caps)]

    def _bad(self, image: str, k: int, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.bad.setdefault(image, []).append((f"{image}#{k}", message))


@dataclass
class Splits:
    """Image ids per split in file order, plus how to point at an entry in an error message."""

    images: dict[str, list[str]]
    describe: Callable[[str, int], str]  # (split, index) -> "splits.json line 12: split 'test' names 'x.jpg'"


def read_captions_tsv(path: Path, name: str, captions: Captions) -> None:
    """``image<TAB>caption_index<TAB>caption`` with a header, written by Python's csv (QUOTE_MINIMAL)."""
    need = ("image", "caption_index", "caption")
    with _open(path, name) as handle:
        records = csv_records(name, csv.reader(handle, delimiter="\t"))
        columns = _header(name, records, need, "tab-separated")
        i_image, i_k, i_caption = (columns.index(c) for c in need)
        width = len(columns)
        for line, fields in records:  # the hot loop: 40k rows, so no per-row helpers on the happy path
            if len(fields) != width:
                if not any(f.strip() for f in fields):
                    continue
                raise DataError(
                    f"{name} line {line}: {len(fields)} tab-separated fields, expected {width} "
                    f"({', '.join(columns)})"
                )
            image, k = fields[i_image].strip(), fields[i_k].strip()
            if not image or not k.isdigit():
                where = f"{name} line {line}"
                image, k = _image_name(image, where), str(_caption_index(k, where))
            captions.add(image, int(k), fields[i_caption], line)


def read_captions_txt(path: Path, name: str, captions: Captions) -> None:
    """Kaggle's ``image,caption`` CSV; a caption's index is its position among that image's rows.

    Unquoted commas inside a caption are tolerated (the extra fields are joined back): image file
    names never contain commas, so the split is unambiguous.
    """
    counts: dict[str, int] = {}
    with _open(path, name) as handle:
        records = csv_records(name, csv.reader(handle))
        _header(name, records, ("image", "caption"), "comma-separated")
        for line, fields in records:
            if not any(f.strip() for f in fields):
                continue
            where = f"{name} line {line}"
            if len(fields) < 2:
                raise DataError(f"{where}: expected 'image,caption', got {','.join(fields)!r}")
            image = _image_name(fields[0], where)
            k = counts.get(image, 0)
            counts[image] = k + 1
            captions.add(image, k, ",".join(fields[1:]), line)


def read_token_file(path: Path, name: str, captions: Captions, ignore: Callable[[str], bool]) -> None:
    """The original ``<image>#<k><TAB><caption>`` lines; ``ignore(image)`` drops lines of stray images."""
    with _open(path, name) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{name} line {line}"
            head, tab, caption = text.rstrip("\r\n").partition("\t")
            image, hash_, k = head.strip().rpartition("#")
            if not tab or not hash_:
                raise DataError(f"{where}: expected '<image>#<k><TAB><caption>', got {text.strip()[:80]!r}")
            image = _image_name(image, where)
            if not ignore(image):
                captions.add(image, _caption_index(k, where), caption, line)


def read_splits_json(path: Path, name: str) -> Splits:
    """``{"train": [...], "val": [...], "test": [...]}``; any split names are allowed, in file order."""
    with _open(path, name) as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name} line {exc.lineno}: bad JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{name}: expected an object mapping split names to lists of image file names")

    def locate(split: str, index: int) -> str:
        image = data[split][index]
        start = max(text.find(json.dumps(split)), 0)
        pos = text.find(json.dumps(image), start)
        line = f" line {text.count(chr(10), 0, pos) + 1}" if pos >= 0 else ""
        return f"{name}{line}: split {split!r} names {image!r} (entry {index + 1})"

    for split, images in data.items():
        if not isinstance(images, list):
            kind = type(images).__name__
            raise DataError(f"{name}: split {split!r} is a {kind}; expected a list of image file names")
        for index, image in enumerate(images):
            if not isinstance(image, str) or not image.strip():
                raise DataError(
                    f"{name}: split {split!r} entry {index + 1} is {image!r}; expected an image file name"
                )
    splits = Splits({s: [i.strip() for i in images] for s, images in data.items()}, locate)
    _check_unique(splits)
    return splits


def read_split_lists(files: dict[str, tuple[Path, str]]) -> Splits:
    """One image file name per line (the official ``Flickr_8k.*Images.txt``), blank lines ignored."""
    images: dict[str, list[str]] = {}
    lines: dict[str, list[int]] = {}
    for split, (path, name) in files.items():
        images[split], lines[split] = [], []
        with _open(path, name) as handle:
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    images[split].append(text.strip())
                    lines[split].append(line)

    def locate(split: str, index: int) -> str:
        name = files[split][1]
        return f"{name} line {lines[split][index]}: split {split!r} names {images[split][index]!r}"

    splits = Splits(images, locate)
    _check_unique(splits)
    return splits


def hashed_splits(captions: Captions) -> Splits:
    """Assign each captioned image by a hash of its file name (75% train, 12.5% val, 12.5% test).

    Stable: an image's split depends only on its own name, never on which other images are present,
    so adding or removing images never moves the rest. Within a split, images are in name order.
    """
    images: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for image in sorted(captions.by_image):
        u = int.from_bytes(hashlib.sha256(image.encode("utf-8")).digest()[:8], "big") / 2**64
        split = next(name for name, upper in HASHED_FRACTIONS if u < upper)
        images[split].append(image)

    def locate(split: str, index: int) -> str:
        image = images[split][index]
        line = captions.first_line[image]
        return f"{captions.file} line {line}: image {image!r} (split {split!r} by name hash)"

    return Splits(images, locate)


def _check_unique(splits: Splits) -> None:
    """An image in two splits (or twice in one) would leak between training and evaluation."""
    seen: dict[str, str] = {}
    for split, images in splits.images.items():
        for index, image in enumerate(images):
            if image in seen:
                raise DataError(f"{splits.describe(split, index)}, which is already in split {seen[image]!r}")
            seen[image] = split


@contextmanager
def _open(path: Path, name: str) -> Iterator[TextIO]:
    """A UTF-8 text handle whose decode/read failures become DataErrors naming the file."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read ({exc.strerror or exc})") from None


def _header(
    name: str, records: Iterator[tuple[int, list[str]]], need: tuple[str, ...], style: str
) -> list[str]:
    """Read the header row; a missing column is a structural error, never skipped."""
    expected = f"expected a {style} header {', '.join(need)}"
    try:
        _, header = next(records)
    except StopIteration:
        raise DataError(f"{name}: empty file; {expected}") from None
    columns = [c.strip() for c in header]
    missing = [c for c in need if c not in columns]
    if missing:
        raise DataError(
            f"{name} line 1: missing column {missing[0]!r}; found header {', '.join(columns)!r}; {expected}"
        )
    return columns


def _image_name(raw: str, where: str) -> str:
    image = raw.strip()
    if not image:
        raise DataError(f"{where}: empty image file name")
    return image


def _caption_index(raw: str, where: str) -> int:
    value = raw.strip()
    if not value.isdigit():
        raise DataError(f"{where}: caption index {raw!r} is not a non-negative integer")
    return int(value)
