"""``pairs:FILE`` — your own paired data as one table (CSV, TSV, JSONL or parquet).

Columns, by name (another table's names are mapped: see "Column names" below):

* ``image`` + ``text`` → sides ``image``/``text``. Image paths are relative to the table's directory
  (absolute paths work too). Rows naming the same image share one image item whose id is the path as
  written, normalised (``./a//b.jpg`` → ``a/b.jpg``); each row is one text item.
* ``text_a`` + ``text_b`` → sides ``text_a``/``text_b`` (both text); each row is one item per side,
  both with the row's id.
* optional ``id``: text item ids (unique over the file); without it a row's id is ``row<N>``, N the
  1-based data row (header and blank lines not counted), so the same table gives the same ids in
  every format.
* optional ``split``: the row's split. Without it every row is in the single split ``all``, which training
  cuts by image into train / val / test (``data.heldout``: deterministic, ``data.split_shares``).
* optional ``label``: class name of the row, recorded in ``SplitData.labels`` for the row's items
  (the image too; one image with two different labels is an error). Empty = unlabelled.
* optional ``labels``: the row's labels for a multi-label classifier of the pair (DynMM; MM-IMDB-style
  genres), ``|``-separated (``drama|comedy``), recorded in ``SplitData.tags``; without it a ``label``
  column gives each pair its one label. The vocabulary (``SplitData.tag_names``) is every label the table
  uses, in every split, sorted — so all splits share one output layout.

Column names: where ``image`` or ``text`` is missing, one of its usual spellings is read in its place —
``file_name`` (Hugging Face imagefolder's ``metadata.csv``), ``filepath`` (open_clip's CSVs), ``image_path``,
``img``; ``caption``, ``title``, ``sentence``, ``captions`` — and an explicit mapping overrides any of them:
``pairs:FILE#image=filepath#text=title`` (or ``--columns image=filepath,text=title``). ``pairs:DIR`` reads
``DIR/metadata.{csv,jsonl,parquet}`` (the imagefolder layout: file names relative to DIR).

Bad rows (empty text or image, missing image file, conflicting label) raise a DataError naming the
file and row; with ``skip_bad`` they are dropped and recorded in ``SplitData.skipped`` instead — a
dropped image drops every row that uses it, recorded once under the image id.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..specs import did_you_mean, key_value, options
from . import SOURCES
from ._common import BadRows, content_fingerprint, source_path
from ._tables import Row, Table, as_text, read_table
from .base import Item, Side, Source, SplitData

Assembled = tuple[dict[str, list[Item]], list[tuple[str, str]], dict[str, str]]  # items, pairs, labels

IMAGE_TEXT = (Side("image", "image"), Side("text", "text"))
TEXT_TEXT = (Side("text_a", "text"), Side("text_b", "text"))
NO_SPLIT = "all"
_SPLIT_ORDER = ("train", "val", "test")
ROLES = ("image", "text", "text_a", "text_b", "id", "split", "label", "labels")
ALIASES = {"image": ("file_name", "filepath", "image_path", "img"), "text": ("caption", "title", "sentence", "captions")}
METADATA = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


@SOURCES.register("pairs")
class PairsSource(Source):
    """A table of image–text or text–text pairs: pairs:FILE (.csv, .tsv, .jsonl, .parquet)."""

    name = "pairs"

    def __init__(self, path: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        base, given = options(path or "")
        self.columns = column_mapping(given)
        self.path = _table_file(source_path(base, "pairs", "file"))
        self._table: Table | None = None
        self.sides = _sides(self._read())

    @property
    def spec(self) -> str:
        return f"pairs:{self.path}" + "".join(f"#{role}={column}" for role, column in self.columns.items())

    @property
    def fingerprint(self) -> str:
        images: list[Path] = []
        if self.sides == IMAGE_TEXT:
            name = self.path.name
            raw = {as_text(r.values.get("image"), r.where(name), "image") for r in self._read().rows}
            images = [self._image_path(i) for i in sorted(raw) if i]
        return content_fingerprint("pairs", [self.path], images)

    def splits(self) -> list[str]:
        table = self._read()
        if "split" not in table.columns:
            return [NO_SPLIT]
        names = dict.fromkeys(_split_of(table, row) for row in table.rows)
        known = [s for s in _SPLIT_ORDER if s in names]
        return known + [s for s in names if s not in _SPLIT_ORDER]

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        table = self._read()
        rows = [r for r in table.rows if "split" not in table.columns or _split_of(table, r) == split]
        bad = BadRows(self.skip_bad)
        if self.sides == IMAGE_TEXT:
            items, pairs, labels = self._image_text(rows, bad)
        else:
            items, pairs, labels = self._text_text(rows, bad)
        names = self._tag_names()
        row_tags = {_row_id(row): _row_tags(table, row) for row in rows} if names else {}
        tags = {pair: row_tags[pair[1]] for pair in pairs if pair[1] in row_tags}
        return SplitData(split, self.sides, items, pairs, labels, bad.skipped, names, tags)

    # -- internals -------------------------------------------------------------------------------

    def _tag_names(self) -> tuple[str, ...]:
        table = self._read()
        if not {"labels", "label"} & set(table.columns):
            return ()
        return tuple(sorted({tag for row in table.rows for tag in _row_tags(table, row)}))

    def _read(self) -> Table:
        """Parse once per source; ids are checked here because they must be unique over the file."""
        if self._table is None:
            table = renamed(read_table(self.path), self.columns)
            if "id" in table.columns:
                _check_ids(table)
            self._table = table
        return self._table

    def _image_path(self, raw: str) -> Path:
        return Path(os.path.normpath(self.path.parent / raw))

    def _image_text(self, rows: list[Row], bad: BadRows) -> Assembled:
        name = self.path.name
        images: dict[str, Item] = {}
        dropped: set[str] = set()
        label_rows: dict[str, tuple[str, int]] = {}  # image id -> (label, row that set it)
        texts: list[Item] = []
        pairs: list[tuple[str, str]] = []
        labels: dict[str, str] = {}
        for row in rows:
            where = row.where(name)
            text_id = _row_id(row)
            text = as_text(row.values.get("text"), where, "text")
            raw = as_text(row.values.get("image"), where, "image")
            label = as_text(row.values.get("label"), where, "label")
            if not text:
                bad.report(text_id, f"{where}: empty 'text'; expected the caption of the image")
                continue
            if not raw:
                bad.report(text_id, f"{where}: empty 'image'; expected an image path")
                continue
            image_id = os.path.normpath(raw)
            if image_id in dropped:
                continue
            if image_id not in images:
                path = self._image_path(raw)
                if not path.exists():
                    bad.report(image_id, f"{where}: image file {raw!r} not found (looked at {path})")
                    dropped.add(image_id)
                    continue
                images[image_id] = Item(image_id, path, row.origin(name))
            if label:
                first = label_rows.setdefault(image_id, (label, row.number))
                if first[0] != label:
                    bad.report(
                        text_id,
                        f"{where}: label {label!r} for image {image_id!r} conflicts with "
                        f"{first[0]!r} from row {first[1]}",
                    )
                    continue
                labels[image_id] = labels[text_id] = label
            texts.append(Item(text_id, text, row.origin(name)))
            pairs.append((image_id, text_id))
        # an image whose every row was dropped after it was added keeps no pairs: drop it as well
        used = {image_id for image_id, _ in pairs}
        kept = [item for item in images.values() if item.id in used]
        for image_id in (i for i in images if i not in used):
            labels.pop(image_id, None)
        return {"image": kept, "text": texts}, pairs, labels

    def _text_text(self, rows: list[Row], bad: BadRows) -> Assembled:
        name = self.path.name
        items: dict[str, list[Item]] = {"text_a": [], "text_b": []}
        pairs: list[tuple[str, str]] = []
        labels: dict[str, str] = {}
        for row in rows:
            where = row.where(name)
            row_id = _row_id(row)
            values = {c: as_text(row.values.get(c), where, c) for c in ("text_a", "text_b")}
            empty = [c for c, v in values.items() if not v]
            if empty:
                bad.report(row_id, f"{where}: empty {empty[0]!r}; expected a text on both sides")
                continue
            for column, value in values.items():
                items[column].append(Item(row_id, value, row.origin(name)))
            pairs.append((row_id, row_id))
            label = as_text(row.values.get("label"), where, "label")
            if label:
                labels[row_id] = label
        return items, pairs, labels


def column_mapping(given: list[tuple[str, str]]) -> dict[str, str]:
    """``[(role, column), ...]`` of a spec's ``#ROLE=COLUMN`` options → {role: column}, roles checked."""
    out: dict[str, str] = {}
    for role, column in given:
        role, column = key_value(f"{role}={column}", "pairs column mapping", "#image=filepath", key="ROLE",
                                 value="COLUMN")
        if role not in ROLES:
            raise DataError(f"pairs column mapping: unknown role {role!r}; roles: {', '.join(ROLES)}."
                            f"{did_you_mean(role, ROLES)}")
        out[role] = column
    return out


def _table_file(path: Path) -> Path:
    """The table itself, or a folder's ``metadata.csv`` (Hugging Face's imagefolder layout)."""
    if path.is_dir():
        found = next((path / name for name in METADATA if (path / name).is_file()), None)
        if found is None:
            raise DataError(f"pairs: folder {path} has no {' / '.join(METADATA)}; give the table's file")
        return found
    if not path.is_file():
        raise DataError(f"pairs: file {path} not found")
    return path


def renamed(table: Table, columns: dict[str, str]) -> Table:
    """The table with its columns under the names this source reads: the explicit mapping first, then, for a
    missing ``image`` / ``text``, the one usual spelling the table has (two are ambiguous: an error)."""
    names = {column: role for role, column in columns.items()}
    for role, column in columns.items():
        if column not in table.columns:
            raise DataError(f"{table.path.name}: no column {column!r} (mapped to {role!r}); found columns: "
                            f"{', '.join(table.columns)}")
    taken = set(names.values()) | {c for c in table.columns if c in ROLES and c not in names}
    for role, spellings in ALIASES.items():
        if role in taken:
            continue
        present = [c for c in spellings if c in table.columns and c not in names]
        if len(present) > 1:
            raise DataError(f"{table.path.name}: columns {' and '.join(map(repr, present))} could each be the "
                            f"{role}; say which, e.g. --columns {role}={present[0]}")
        if present:
            names[present[0]] = role
    if not names:
        return table
    roles = set(names.values())
    kept = [c for c in table.columns if c in names or c not in roles]  # a mapped role's own column steps aside
    rename = {c: names.get(c, c) for c in kept}
    rows = [Row(r.number, r.line, {rename[c]: v for c, v in r.values.items() if c in rename}) for r in table.rows]
    return Table(table.path, [rename[c] for c in kept], rows)


def _sides(table: Table) -> tuple[Side, Side]:
    """Pick the pairing from the column names; say exactly which column is missing otherwise."""
    cols = set(table.columns)
    name = table.path.name
    found = ", ".join(table.columns) or "(none)"
    has_image, has_text = {"image", "text"} <= cols, {"text_a", "text_b"} <= cols
    if has_image and has_text:
        raise DataError(
            f"{name}: has both image+text and text_a+text_b columns; expected exactly one of the two"
        )
    if has_image:
        return IMAGE_TEXT
    if has_text:
        return TEXT_TEXT
    partner = {"image": "text", "text": "image", "text_a": "text_b", "text_b": "text_a"}
    present = [c for c in ("image", "text", "text_a", "text_b") if c in cols]
    lacking = partner[present[0]] if present else ""
    what = f"column {lacking!r}" if present else "columns"
    also = f" (or {', '.join(ALIASES[lacking])})" if lacking in ALIASES else ""
    raise DataError(
        f"{name}: missing {what}{also}; found columns: {found}; expected image+text or text_a+text_b, or say which "
        "column is which with --columns ROLE=COLUMN (e.g. --columns image=photo,text=words)"
    )


def _row_tags(table: Table, row: Row) -> tuple[str, ...]:
    """A row's labels: its ``labels`` cell split on ``|``, else its ``label`` (none when empty)."""
    where = row.where(table.path.name)
    if "labels" in table.columns:
        cell = as_text(row.values.get("labels"), where, "labels")
        return tuple(dict.fromkeys(t.strip() for t in cell.split("|") if t.strip()))
    cell = as_text(row.values.get("label"), where, "label")
    return (cell,) if cell else ()


def _row_id(row: Row) -> str:
    given = row.values.get("id")
    return as_text(given, "", "id") if given not in (None, "") else f"row{row.number}"


def _split_of(table: Table, row: Row) -> str:
    where = row.where(table.path.name)
    split = as_text(row.values.get("split"), where, "split")
    if not split:
        raise DataError(f"{where}: empty 'split'; expected a split name such as train, val or test")
    return split


def _check_ids(table: Table) -> None:
    """Ids are how pairs, labels and caches refer to rows, so a blank or repeated id is never skipped."""
    first: dict[str, int] = {}
    for row in table.rows:
        where = row.where(table.path.name)
        value = as_text(row.values.get("id"), where, "id")
        if not value:
            raise DataError(f"{where}: empty 'id'; ids must be non-empty when the column exists")
        if value in first:
            raise DataError(f"{where}: duplicate id {value!r} (first used at row {first[value]})")
        first[value] = row.number
