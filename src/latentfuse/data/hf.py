"""``hf:PATH_OR_NAME`` — image–text pairs from a Hugging Face dataset.

What PATH_OR_NAME may be:

* a folder written by ``datasets``' ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``): its Arrow files,
  memory-mapped;
* a parquet file, or a folder of them (the Hub's layout: ``data/train-00000-of-00004.parquet``, or one folder
  per split): the split is the file name's prefix before the first ``-`` (or the folder's name) when that is
  ``train`` / ``validation`` / ``val`` / ``test``, else every file is in the one split ``all``;
* anything else is a dataset name for ``datasets.load_dataset`` (``hf:nlphuji/flickr30k``): downloaded where
  the machine is online, read from the Hugging Face cache where it is not.

Columns: the image column is the first of type ``Image`` (bytes and/or path), else one named ``image``,
``img``, ``file_name``, ``filepath`` or ``image_path`` (binary: encoded bytes; string: a path, relative to the
data file's folder); the text column is one named ``text``, ``caption``, ``captions``, ``sentence`` or ``title``
(a string, or a list of strings: several captions of one image). Name them explicitly with
``hf:PATH#image=COL#text=COL``. A split ``all`` is cut by training like a ``pairs:`` table without a split column.

Ids: the row's position in its split (``17``); a list of captions gives text ids ``17#0``, ``17#1``…

Streaming: files are read a row group (parquet) or record batch (Arrow) at a time, and an image is a reference
to its cell (``utils.blobs.TableCell``) whose bytes are read when it is encoded: no step holds the collection's
pixels, and extraction caches features by content and resumes. A row without an image or a caption is a
DataError naming the file and row (``--skip-bad``: dropped and recorded).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError
from ..specs import options
from ..utils.blobs import TableCell, arrow_batches
from ..utils.hashing import digest
from . import SOURCES
from ._common import BadRows, content_fingerprint
from .base import Item, Payload, Side, Source, SplitData

IMAGE_NAMES = ("image", "img", "file_name", "filepath", "image_path")
TEXT_NAMES = ("text", "caption", "captions", "sentence", "title")
SPLIT_NAMES = ("train", "validation", "val", "test")
NO_SPLIT = "all"
_VERSION = "hf/1"  # bump when ids or the column rules change: part of the fingerprint


@dataclass(frozen=True)
class DataFile:
    path: Path
    kind: str  # "parquet" | "arrow"


@SOURCES.register("hf")
class HFDatasetSource(Source):
    """Image–text pairs from a Hugging Face dataset: hf:PATH (save_to_disk folder, parquet) or hf:NAME."""

    name = "hf"
    sides = (Side("image", "image"), Side("text", "text"))

    def __init__(self, target: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)
        base, given = options(target or "")
        if not base.strip():
            raise DataError("hf needs a dataset: write it as 'hf:PATH' (save_to_disk folder or parquet) or 'hf:NAME'")
        local = Path(base.strip()).expanduser()
        self.target = str(local.absolute()) if local.exists() else base.strip()  # a path as every spec has it
        self.columns = {name.strip(): value.strip() for name, value in given}
        unknown = sorted(name for name, value in self.columns.items() if name not in ("image", "text") or not value)
        if unknown:
            raise DataError(f"hf:{self.target}: unknown or empty option(s) {', '.join(unknown)}; "
                            "expected #image=COLUMN, #text=COLUMN")
        self.files = data_files(self.target)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.target}" + "".join(f"#{role}={column}" for role, column in self.columns.items())

    @property
    def fingerprint(self) -> str:
        paths = [f.path for files in self.files.values() for f in files]
        return digest(_VERSION, content_fingerprint(self.name, paths, []), sorted(self.columns.items()),
                      {split: [f.path.name for f in files] for split, files in self.files.items()})

    def splits(self) -> list[str]:
        return list(self.files)

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        bad = BadRows(self.skip_bad)
        images: list[Item] = []
        texts: list[Item] = []
        pairs: list[tuple[str, str]] = []
        position = 0
        for file in self.files[split]:
            image_column, text_column = self._columns(file)
            file_row = 0
            for group, batch in enumerate(batches(file, [image_column, text_column])):
                for row, (cell, text) in enumerate(zip(_cells(batch, 0), batch.column(1).to_pylist())):
                    item_id, where = str(position), f"{file.path} row {file_row}"
                    position, file_row = position + 1, file_row + 1
                    payload = image_payload(cell, file, image_column, group, row)
                    captions = [t.strip() for t in (text if isinstance(text, list) else [text])
                                if isinstance(t, str) and t.strip()]
                    if payload is None or not captions:
                        bad.report(item_id, f"hf: {where}: no {'image' if payload is None else 'caption'} "
                                            f"(columns {image_column!r}, {text_column!r})")
                        continue
                    images.append(Item(item_id, payload, where))
                    ids = [item_id] if not isinstance(text, list) else [f"{item_id}#{k}" for k in range(len(captions))]
                    texts += [Item(text_id, caption, where) for text_id, caption in zip(ids, captions)]
                    pairs += [(item_id, text_id) for text_id in ids]
        if not images:
            raise DataError(f"hf:{self.target}: split {split!r} has no image–text rows")
        return SplitData(split, self.sides, {"image": images, "text": texts}, pairs, skipped=bad.skipped)

    def _columns(self, file: DataFile) -> tuple[str, str]:
        """(image column, text column) of a data file: as named, else found by type and usual names."""
        schema = file_schema(file)
        names = list(schema.names)
        typed = next((n for n in names if is_image_type(schema.field(n).type)), None)
        image = self.columns.get("image") or typed or next((n for n in IMAGE_NAMES if n in names), None)
        text = self.columns.get("text") or next((n for n in TEXT_NAMES if n in names), None)
        for role, column in (("image", image), ("text", text)):
            if column is None or column not in names:
                raise DataError(f"hf: {file.path}: no {role} column "
                                f"({'column ' + repr(column) + ' not found; ' if column else ''}columns: "
                                f"{', '.join(names)}); name it with hf:{self.target}#{role}=COLUMN")
        return image, text  # type: ignore[return-value]


def _cells(batch: Any, column: int) -> Iterator[Any]:
    """A batch's image cells without copying the bytes into Python: (has bytes, path) per row."""
    array = batch.column(column)
    if hasattr(array, "combine_chunks"):  # a parquet row group is a table: its columns come in chunks
        array = array.combine_chunks()
    if is_image_type(array.type):  # struct<bytes, path> (datasets' Image feature)
        names = _struct_names(array.type)
        has_bytes = array.field("bytes").is_valid().to_pylist() if "bytes" in names else [False] * len(array)
        paths = array.field("path").to_pylist() if "path" in names else [None] * len(array)
        return iter(list(zip(has_bytes, paths)))
    if is_binary(array.type):
        return iter([(valid, None) for valid in array.is_valid().to_pylist()])
    return iter([(False, path) for path in array.to_pylist()])


def image_payload(cell: tuple[bool, str | None], file: DataFile, column: str, group: int, row: int) -> Payload | None:
    """A cell's image: a reference to its bytes, else its path (relative to the data file's folder)."""
    has_bytes, path = cell
    if has_bytes:
        return TableCell(str(file.path), column, group, row)
    if isinstance(path, str) and path.strip():
        resolved = Path(path).expanduser()
        return str(resolved if resolved.is_absolute() else file.path.parent / resolved)
    return None


def batches(file: DataFile, columns: list[str]) -> Iterator[Any]:
    """The file's row groups (parquet) or record batches (Arrow), only ``columns``, one at a time."""
    import pyarrow.parquet as pq

    if file.kind == "parquet":
        handle = pq.ParquetFile(file.path)
        for group in range(handle.num_row_groups):
            yield handle.read_row_group(group, columns=columns)
        return
    for batch in arrow_batches(str(file.path)):
        yield batch.select(columns)


def file_schema(file: DataFile) -> Any:
    import pyarrow.parquet as pq

    if file.kind == "parquet":
        return pq.ParquetFile(file.path).schema_arrow
    found = arrow_batches(str(file.path))
    if not found:
        raise DataError(f"hf: {file.path}: an Arrow file without rows")
    return found[0].schema


def is_image_type(kind: Any) -> bool:
    """datasets' Image feature as Arrow stores it: a struct with a ``bytes`` field (and a ``path``)."""
    import pyarrow as pa

    return pa.types.is_struct(kind) and "bytes" in _struct_names(kind)


def is_binary(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _struct_names(kind: Any) -> list[str]:
    import pyarrow as pa

    return [kind.field(i).name for i in range(kind.num_fields)] if pa.types.is_struct(kind) else []


def data_files(target: str) -> dict[str, list[DataFile]]:
    """Split → data files of a save_to_disk folder, parquet file(s), or (else) a dataset name."""
    from ..utils.extras import require

    require("data", f"hf:{target}")
    path = Path(target).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        return saved_dataset(path)
    if path.is_file() and path.suffix == ".parquet":
        return {NO_SPLIT: [DataFile(path.resolve(), "parquet")]}
    if path.is_dir():
        found = sorted(path.rglob("*.parquet"))
        if not found:
            raise DataError(f"hf: {path}: neither a save_to_disk folder (dataset_dict.json / state.json) nor a folder "
                            "of .parquet files")
        return parquet_splits([p.resolve() for p in found], path)
    if path.exists() or "/" in target and Path(target.split("/")[0]).exists():
        raise DataError(f"hf: {path}: expected a save_to_disk folder, a .parquet file or a folder of them")
    return named_dataset(target)


def saved_dataset(path: Path) -> dict[str, list[DataFile]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DataError(f"hf: {path}: not a readable save_to_disk folder ({exc})") from None
    return arrow_files(loaded)


def named_dataset(name: str) -> dict[str, list[DataFile]]:
    """``datasets.load_dataset(name)``: the Hub (online) or the local Hugging Face cache (offline)."""
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except Exception as exc:  # noqa: BLE001 - the Hub, the network and the builders raise many kinds
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(f"hf:{name}: not a local dataset folder or parquet file, and datasets.load_dataset could not "
                        f"load it by name ({first})") from None
    return arrow_files(loaded)


def arrow_files(loaded: Any) -> dict[str, list[DataFile]]:
    """Split → the Arrow files behind a Dataset (split ``all``) or DatasetDict (its splits)."""
    parts = dict(loaded) if hasattr(loaded, "keys") else {NO_SPLIT: loaded}
    out = {}
    for split, dataset in parts.items():
        if dataset.cache_files == [] or len(dataset) == 0:
            raise DataError(f"hf: split {split!r} has no rows on disk (an in-memory or empty dataset)")
        if dataset._indices is not None:  # select/shuffle views: the files hold other rows in another order
            raise DataError(f"hf: split {split!r} is a view (select / shuffle / filter) of its files; "
                            "save it with .flatten_indices().save_to_disk(PATH) and use hf:PATH")
        out[split] = [DataFile(Path(f["filename"]), "arrow") for f in dataset.cache_files]
    return out


def parquet_splits(files: list[Path], root: Path) -> dict[str, list[DataFile]]:
    """Parquet files by split: the file name's prefix before '-', or the folder's name, when it names a split."""
    splits: dict[str, list[DataFile]] = {}
    for path in files:
        prefix = re.split(r"[-_.]", path.name, maxsplit=1)[0]
        split = prefix if prefix in SPLIT_NAMES else path.parent.name if path.parent.name in SPLIT_NAMES \
            and path.parent != root else NO_SPLIT
        splits.setdefault(split, []).append(DataFile(path, "parquet"))
    if NO_SPLIT in splits and len(splits) > 1:
        named = ", ".join(str(f.path.relative_to(root)) for f in splits[NO_SPLIT][:3])
        raise DataError(f"hf: {root}: some parquet files name a split and some do not ({named}); keep one layout")
    return splits
