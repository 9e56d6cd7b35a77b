"""``lines:FILE`` — a pool of sentences, one per line (UTF-8), unpaired: what ``latentfuse distill --texts``
reads besides the sentences of paired sets.

The one split is ``all``. Each non-blank line is an item (surrounding whitespace stripped), id
``line/<number>`` (1-based line number, so an error or a skip report points at the line). Blank lines are
ignored. The image side is empty and there are no pairs: the source can be embedded, indexed or distilled
from, never trained on as pairs. A file that is not UTF-8 is a DataError naming the first bad line.
"""
from __future__ import annotations

from ..errors import DataError
from ..utils.hashing import digest, file_digest
from . import SOURCES
from ._common import source_path
from ._tables import first_undecodable_line
from .base import Item, Side, Source, SplitData

SPLIT = "all"


@SOURCES.register("lines", help="one sentence per line of a UTF-8 text file, unpaired (a text pool)")
class Lines(Source):
    """Sentences of a text file, one per line, unpaired: lines:FILE."""

    name = "lines"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        self.path = source_path(path, self.name, "file")
        if not self.path.is_file():
            raise DataError(f"lines: file {self.path} not found" + (" (a folder)" if self.path.is_dir() else ""))

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.path}"

    @property
    def fingerprint(self) -> str:
        return digest("lines/1", file_digest(self.path))

    def splits(self) -> list[str]:
        return [SPLIT]

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.path.name}:{first_undecodable_line(self.path)}: not UTF-8 text "
                            f"({exc.reason})") from None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        items = [Item(f"line/{number}", line.strip(), f"{self.path.name}:{number}")
                 for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if not items:
            raise DataError(f"{self.path}: no sentences (every line is blank)")
        return SplitData(split, self.sides, {"image": [], "text": items}, [])
