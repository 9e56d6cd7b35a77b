"""``images:DIR`` — an unlabelled photo collection (every image file under DIR, recursively) to index.

The one split is ``all``. The image side holds every file whose extension is an image extension
(hidden files and folders skipped), id = path relative to DIR in POSIX form (``2024/beach/001.jpg``);
the text side is empty and there are no pairs, so the source can be embedded and searched but not
trained on. An unreadable image fails at encode time with its path (``--skip-bad`` skips and records it).
New files change the fingerprint; ``latentfuse index`` then embeds only the files it has not seen.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..utils.digests import content_digest
from ..utils.hashing import digest
from . import SOURCES
from ._common import source_path
from .base import Item, Side, Source, SplitData
from .imagefolder import IMAGE_EXTENSIONS, images_under

SPLIT = "all"


@SOURCES.register("images")
class ImageCollection(Source):
    """Every image file under a folder, unlabelled and unpaired: images:DIR."""

    name = "images"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        self.root = source_path(root, self.name, "dir")
        if not self.root.is_dir():
            raise DataError(f"images: directory {self.root} not found")
        self._files: list[Path] | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.root}"

    @property
    def fingerprint(self) -> str:
        files = self.files()
        return digest("images/2", content_digest(files), [p.relative_to(self.root).as_posix() for p in files])

    def splits(self) -> list[str]:
        return [SPLIT]

    def files(self) -> list[Path]:
        if self._files is None:
            found = images_under(self.root)
            if not found:
                raise DataError(f"images: no image files under {self.root} "
                                f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            self._files = found
        return self._files

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        items = [Item(p.relative_to(self.root).as_posix(), p, str(p)) for p in self.files()]
        return SplitData(split, self.sides, {"image": items, "text": []}, [])
