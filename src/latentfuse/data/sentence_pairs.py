"""Text–text evaluation sets: sentence (or word) pairs with a gold similarity score or a 0/1 label.

Specs:

* ``sts:FILE`` — a table (TSV/CSV/JSONL/parquet) with columns ``sentence1``, ``sentence2``, ``score``;
  optional ``split`` and ``id``. ``sts-b[:DIR_OR_FILE]`` is the STS Benchmark in that shape
  (default ``../shared/data/sts-b/stsb.tsv``, resolved against the current directory).
* ``pair-labels:FILE`` — columns ``sentence1``, ``sentence2``, ``label`` (``0`` or ``1``); optional
  ``split`` and ``id``. ``mrpc[:DIR_OR_FILE]`` is MRPC in that shape (default
  ``../shared/data/mrpc/mrpc.tsv``).
* ``wordsim353[:FILE]`` / ``simlex999[:FILE]`` — word pairs with a human score, in gensim's format
  (``#`` comment lines, then ``word1<TAB>word2<TAB>score``); by default the copies gensim ships in
  ``gensim/test/test_data`` (install ``gensim``, e.g. via ``latentfuse[eval]``).

Shape (what the ``sts`` and ``pair-classification`` evaluators read): sides ``text_a`` (sentence1) and
``text_b`` (sentence2). Each row is one item on each side, both carrying the row's id — ``row<N>`` with N
the 1-based data row (header, comments and blank lines not counted), or the ``id`` column — and the two
are paired. The row's gold target is ``SplitData.labels[row id]``: the score as a decimal string, or
``"0"``/``"1"``; ``targets()`` turns them back into floats. Targets are validated here, at load, so a bad
one is reported with its file, row and column rather than surfacing mid-evaluation. Without a ``split``
column every row is in the split ``all``.

Sentences repeated across rows are encoded once per row: the cache is per item, and STS-B's repeats are
too few to be worth an id scheme that differs from ``pairs:``.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import ClassVar

from ..errors import DataError
from . import SOURCES
from ._common import BadRows, content_fingerprint, source_path
from ._tables import Row, Table, as_text, read_table
from .base import Item, Side, Source, SplitData
from .pairs import _check_ids, _split_of  # the same split/id rules as pairs: tables

TEXT_TEXT = (Side("text_a", "text"), Side("text_b", "text"))
NO_SPLIT = "all"
_SPLIT_ORDER = ("train", "dev", "val", "test")
SHARED_DATA = Path("..") / "shared" / "data"  # relative to the current directory, like the README's examples


def targets(data: SplitData) -> dict[str, float]:
    """Row id → gold score (or 0./1. label) of a split loaded from one of these sources."""
    return {item.id: float(data.labels[item.id]) for item in data.items["text_a"] if item.id in data.labels}


class PairTable(Source):
    """Rows of (sentence1, sentence2, target); subclasses say which target column and how to read the file."""

    sides = TEXT_TEXT
    target: ClassVar[str] = "score"  # "score" (any number) or "label" (0 or 1)

    def __init__(self, path: Path, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        if not path.is_file():
            raise DataError(f"{self.name}: file {path} not found")
        self.path = path
        self._table: Table | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.path}"

    @property
    def fingerprint(self) -> str:
        return content_fingerprint(self.name, [self.path], [])

    def splits(self) -> list[str]:
        table = self._read()
        if "split" not in table.columns:
            return [NO_SPLIT]
        names = dict.fromkeys(_split_of(table, row) for row in table.rows)
        return [s for s in _SPLIT_ORDER if s in names] + [s for s in names if s not in _SPLIT_ORDER]

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        table = self._read()
        name, bad = self.path.name, BadRows(self.skip_bad)
        items: dict[str, list[Item]] = {"text_a": [], "text_b": []}
        pairs: list[tuple[str, str]] = []
        labels: dict[str, str] = {}
        for row in table.rows:
            if "split" in table.columns and _split_of(table, row) != split:
                continue
            where = row.where(name)
            row_id = as_text(row.values.get("id"), where, "id") if "id" in table.columns else f"row{row.number}"
            first = as_text(row.values.get("sentence1"), where, "sentence1")
            second = as_text(row.values.get("sentence2"), where, "sentence2")
            if not first or not second:
                bad.report(row_id, f"{where}: empty {'sentence1' if not first else 'sentence2'!r}")
                continue
            value = self._target(row, where, bad, row_id)
            if value is None:
                continue
            items["text_a"].append(Item(row_id, first, row.origin(name)))
            items["text_b"].append(Item(row_id, second, row.origin(name)))
            pairs.append((row_id, row_id))
            labels[row_id] = value
        return SplitData(split, self.sides, items, pairs, labels, bad.skipped)

    # -- internals -------------------------------------------------------------------------------

    def _read(self) -> Table:
        if self._table is None:
            table = self._read_table()
            missing = [c for c in ("sentence1", "sentence2", self.target) if c not in table.columns]
            if missing:
                raise DataError(f"{self.path.name}: missing column(s) {', '.join(missing)}; the header has "
                                f"{', '.join(table.columns)} (expected sentence1, sentence2, {self.target}"
                                ", optional split, id)")
            if "id" in table.columns:
                _check_ids(table)
            self._table = table
        return self._table

    def _read_table(self) -> Table:
        return read_table(self.path)

    def _target(self, row: Row, where: str, bad: BadRows, row_id: str) -> str | None:
        """The row's target as canonical text, or None after reporting it as bad."""
        raw = as_text(row.values.get(self.target), where, self.target)
        if self.target == "label":
            if raw not in ("0", "1"):
                bad.report(row_id, f"{where}: 'label' is {raw!r}; expected 0 or 1")
                return None
            return raw
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            bad.report(row_id, f"{where}: 'score' is {raw!r}; expected a number")
            return None
        return repr(value)


@SOURCES.register("sts")
class STSTable(PairTable):
    """Sentence pairs with a similarity score: sts:FILE (sentence1, sentence2, score[, split, id])."""

    name = "sts"

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(source_path(path, self.name, "file"), skip_bad=skip_bad)


@SOURCES.register("pair-labels")
class PairLabelTable(PairTable):
    """Sentence pairs with a 0/1 label: pair-labels:FILE (sentence1, sentence2, label[, split, id])."""

    name = "pair-labels"
    target = "label"

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(source_path(path, self.name, "file"), skip_bad=skip_bad)


@SOURCES.register("sts-b")
class STSB(PairTable):
    """STS Benchmark (train/dev/test): sts-b[:DIR_OR_FILE], default ../shared/data/sts-b/stsb.tsv."""

    name = "sts-b"

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(_shared_file(self.name, path, "sts-b", "stsb.tsv", "sts:FILE"), skip_bad=skip_bad)


@SOURCES.register("mrpc")
class MRPC(PairTable):
    """MRPC paraphrase pairs (train/test): mrpc[:DIR_OR_FILE], default ../shared/data/mrpc/mrpc.tsv."""

    name = "mrpc"
    target = "label"

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(_shared_file(self.name, path, "mrpc", "mrpc.tsv", "pair-labels:FILE"),
                         skip_bad=skip_bad)


class WordSimilarity(PairTable):
    """Word pairs with a human score in gensim's test-data format."""

    gensim_file: ClassVar[str] = ""

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        self.default = not path
        super().__init__(source_path(path, self.name, "file") if path else _gensim_file(self.name, self.gensim_file),
                         skip_bad=skip_bad)

    @property
    def spec(self) -> str:
        return self.name if self.default else f"{self.name}:{self.path}"

    def _read_table(self) -> Table:
        """``#`` comments, then ``word1<TAB>word2<TAB>score`` per line; extra columns are ignored."""
        rows: list[Row] = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path.name}: cannot read ({exc})") from None
        for line, text in enumerate(lines, start=1):
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            fields = text.split("\t")
            if len(fields) < 3:
                raise DataError(f"{self.path.name} line {line}: {len(fields)} tab-separated field(s); "
                                "expected word1, word2, score")
            rows.append(Row(len(rows) + 1, line, dict(zip(("sentence1", "sentence2", "score"), fields))))
        if not rows:
            raise DataError(f"{self.path.name}: no word pairs (expected word1<TAB>word2<TAB>score lines)")
        return Table(self.path, ["sentence1", "sentence2", "score"], rows)


@SOURCES.register("wordsim353")
class WordSim353(WordSimilarity):
    """WordSim-353 word pairs, human relatedness 0-10: wordsim353[:FILE] (default: gensim's copy)."""

    name = "wordsim353"
    gensim_file = "wordsim353.tsv"


@SOURCES.register("simlex999")
class SimLex999(WordSimilarity):
    """SimLex-999 word pairs, human similarity 0-10: simlex999[:FILE] (default: gensim's copy)."""

    name = "simlex999"
    gensim_file = "simlex999.txt"


def _shared_file(source: str, arg: str | None, folder: str, file: str, general: str) -> Path:
    """The table of a named shared set: ARG as a file, ARG/FILE, or ../shared/data/FOLDER/FILE."""
    if arg and arg.strip():
        path = Path(arg.strip()).expanduser().resolve()
        path = path / file if path.is_dir() else path
        if not path.is_file():
            raise DataError(f"{source}: {path} not found")
        return path
    path = (SHARED_DATA / folder / file).resolve()
    if not path.is_file():
        raise DataError(f"{source}: {path} not found (the default is {SHARED_DATA / folder / file}, relative "
                        f"to the current directory); pass {source}:DIR or {general}")
    return path


def _gensim_file(source: str, file: str) -> Path:
    """The copy gensim ships in gensim/test/test_data, found without importing gensim."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{source}: its default file is gensim's test_data/{file}, but gensim is not "
                        f"installed; `pip install gensim` (or latentfuse[eval]), or pass {source}:FILE")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / file
    if not path.is_file():
        raise DataError(f"{source}: gensim has no {path}; pass {source}:FILE")
    return path
