"""``webdataset:PATTERN`` — image–text pairs in WebDataset tar shards, as img2dataset writes them.

PATTERN names local shards: brace ranges (``shards/{00000..00099}.tar``), a glob (``shards/*.tar``), a single
``.tar`` or a folder (every ``*.tar`` in it); several patterns join with ``::``. Shards are read in the order
the pattern lists them.

Pairing follows WebDataset's rule: the members of a shard whose names share everything before the first dot
of the file name are one sample (``000123.jpg``, ``000123.txt``, ``000123.json`` → key ``000123``). A
sample's image is its ``jpg`` / ``jpeg`` / ``png`` / ``webp`` member; its text is its ``txt`` member, else its
``json`` member's ``caption`` (img2dataset writes both). A sample without an image or a text, or a key seen
twice, is a DataError naming the shard and key (``--skip-bad``: dropped and recorded). Each sample is one image
item and one text item, both with the sample's key as id.

No split is recorded in the shards: every sample is in the one split ``all``, which training cuts into
train / val / test by image (``data.heldout``, ``data.split_shares``), as for a ``pairs:`` table without a
split column.

Streaming: listing a shard reads its tar headers only (one seek per member); an image item is a reference
to its member (``utils.blobs.TarMember``) whose bytes the encoder reads when it gets there, so no step holds
the pixels of the collection, and extraction, local or on Ray, caches features by content and resumes.
Shards must be uncompressed tar (``.tar``: what img2dataset writes), so any member can be read directly.
"""
from __future__ import annotations

import glob
import json
import tarfile
from pathlib import Path

from ..errors import DataError
from ..utils.blobs import TarMember
from ..utils.hashing import digest
from . import SOURCES
from ._common import BadRows, content_fingerprint
from .base import Item, Side, Source, SplitData

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
NO_SPLIT = "all"
_VERSION = "webdataset/1"  # bump when ids or the pairing rule change: part of the fingerprint


@SOURCES.register("webdataset")
class WebDatasetSource(Source):
    """Image–text pairs in WebDataset tar shards (img2dataset's output): webdataset:PATTERN."""

    name = "webdataset"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, pattern: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        if not pattern or not pattern.strip():
            raise DataError("webdataset needs shards: write it as 'webdataset:PATTERN', e.g. "
                            "webdataset:shards/{00000..00009}.tar")
        # absolute, as every source's spec is (an index rebuilds its sources from it, from any folder)
        self.pattern = "::".join(str(Path(part.strip()).expanduser().absolute()) for part in pattern.split("::"))
        self.shards = shard_paths(self.pattern)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.pattern}"

    @property
    def fingerprint(self) -> str:
        return digest(_VERSION, content_fingerprint(self.name, self.shards, []), [p.name for p in self.shards])

    def splits(self) -> list[str]:
        return [NO_SPLIT]

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        bad = BadRows(self.skip_bad)
        images: list[Item] = []
        texts: list[Item] = []
        seen: dict[str, Path] = {}
        for shard in self.shards:
            for key, members in samples(shard):
                where = f"{shard} sample {key!r}"
                if key in seen:
                    bad.report(key, f"webdataset: {where}: key already used in {seen[key]}; keys must be unique")
                    continue
                seen[key] = shard
                image = next((members[ext] for ext in IMAGE_EXTENSIONS if ext in members), None)
                text, problem = caption(members)
                if image is None or not text:
                    missing = problem or ("no image (" + "/".join(IMAGE_EXTENSIONS) + ")" if image is None else
                                          "no caption (a .txt member, or .json with a 'caption')")
                    bad.report(key, f"webdataset: {where}: {missing}; members: {', '.join(sorted(members))}")
                    continue
                images.append(Item(key, image, where))
                texts.append(Item(key, text, where))
        if not images:
            raise DataError(f"webdataset: {self.pattern}: no image–text samples in {len(self.shards)} shard(s)")
        pairs = [(item.id, item.id) for item in images]
        return SplitData(split, self.sides, {"image": images, "text": texts}, pairs, skipped=bad.skipped)


def shard_paths(pattern: str) -> list[Path]:
    """The shard files a PATTERN names, in its order; a name that matches nothing is a DataError."""
    from braceexpand import braceexpand

    shards: list[Path] = []
    for part in pattern.split("::"):
        for name in braceexpand(part.strip()):
            path = Path(name).expanduser()
            if path.is_dir():
                found = sorted(path.glob("*.tar"))
            elif glob.has_magic(name):
                found = sorted(Path(p) for p in glob.glob(str(path)))
            else:
                found = [path]
            if not found or not all(p.is_file() for p in found):
                raise DataError(f"webdataset: {name}: no such shard (expected .tar files; pattern {pattern!r})")
            shards += [p.resolve() for p in found]
    for path in shards:
        if not path.name.endswith(".tar"):
            raise DataError(f"webdataset: {path}: expected an uncompressed .tar shard (what img2dataset writes); "
                            "unpack compressed shards first")
    return list(dict.fromkeys(shards))


def samples(shard: Path) -> list[tuple[str, dict[str, TarMember | bytes]]]:
    """(key, {extension: member}) for each sample of one shard, in the shard's order: one pass over the tar
    headers; images stay references (``TarMember``), captions (.txt, .json) are read in the same pass."""
    grouped: dict[str, dict[str, TarMember | bytes]] = {}
    try:
        with tarfile.open(shard, "r:") as archive:
            for member in archive:
                folder, _, base = member.name.rpartition("/")
                stem, dot, extension = base.partition(".")
                if not member.isfile() or not dot or not stem:
                    continue  # WebDataset's rule: a member without an extension is not part of a sample
                key, extension = (f"{folder}/{stem}" if folder else stem), extension.lower()
                if extension in ("txt", "json"):
                    handle = archive.extractfile(member)
                    value: TarMember | bytes = handle.read() if handle else b""
                else:
                    value = TarMember(str(shard), member.name, member.offset_data, member.size)
                grouped.setdefault(key, {})[extension] = value
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"webdataset: {shard}: not a readable tar shard ({exc})") from None
    return list(grouped.items())


def caption(members: dict[str, TarMember | bytes]) -> tuple[str, str]:
    """(the sample's text, '' or why it has none): its .txt member, else the 'caption' of its .json member."""
    raw = members.get("txt")
    try:
        if isinstance(raw, bytes):
            return raw.decode("utf-8").strip(), ""
        meta = members.get("json")
        if isinstance(meta, bytes):
            parsed = json.loads(meta)
            return (str(parsed.get("caption") or "").strip() if isinstance(parsed, dict) else ""), ""
    except (UnicodeDecodeError, ValueError) as exc:
        return "", f"unreadable caption ({exc})"
    return "", ""
