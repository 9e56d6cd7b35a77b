"""``latentfuse.fit``: the training job from Python, on a source spec or on data in memory.

    model = latentfuse.fit([("photos/a.jpg", "a dog on the beach"), ...], out="runs/mine", epochs=10)
    model = latentfuse.fit(df, out="runs/mine")                  # columns image, text (and split)
    model = latentfuse.fit("flickr8k:DIR", recipe="flickr8k")    # any source spec
    model.encode_text("a dog")

It is the same job as ``latentfuse train`` / ``run`` (``pipeline.run``): a recipe (default: ``default``) →
your settings → extract → train → query bank, test report, card → saved model, returned loaded. Data in
memory — a list of (image, caption) or (image, caption, split) tuples, a pandas DataFrame, a Hugging Face
``datasets.Dataset`` — is written once as a ``pairs:`` table under the feature cache, named by its content, so
the same data is the same table (and the same cached features) on every call. Images may be paths, PIL
images or arrays (saved as PNG beside the table). Rows without a split are cut by image when training
starts, as any table without a split column is (``data.heldout``: 80/10/10 by a digest, ``data.split_shares``).
"""
from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any, Iterable, Sequence

from .config import RunConfig, apply_overrides, overlay
from .config.recipes import DEFAULT_RECIPE, load_recipe
from .errors import DataError
from .model import JointModel
from .pipeline import run as run_job


def fit(data: Any, *, out: str | Path = "runs/latest", recipe: str = DEFAULT_RECIPE,
        config: dict[str, Any] | None = None, encoders: dict[str, str] | None = None, method: str | None = None,
        epochs: int | None = None, set: Sequence[str] = (), baselines: bool = False, overwrite: bool = False,
        resume: bool = False, progress: bool = True) -> JointModel:
    """Train a joint embedding on ``data`` and return the saved model (also written to ``out``).

    ``config``: fields laid over the recipe (a dict shaped like the YAML); ``set``: ``key=value`` strings as
    ``--set``; ``encoders``, ``method``, ``epochs``: the common ones by name. ``baselines=False`` trains the
    method alone (as ``latentfuse train``); ``True`` keeps the recipe's side-by-side baselines.
    """
    cfg = load_recipe(recipe, RunConfig)
    if config:
        cfg = overlay(cfg, config, where="fit(config=...)")
    if set:
        cfg = apply_overrides(cfg, list(set))
    given = {"encoders": encoders, "method": {"name": method} if method else None,
             "train": {"epochs": epochs} if epochs is not None else None, "out": str(out)}
    cfg = overlay(cfg, {k: v for k, v in given.items() if v is not None}, where="fit()")
    cfg.data.source, splits = source_spec(data, Path(cfg.store.root).parent / "tables")
    _fit_splits(cfg, splits)
    if not baselines:
        cfg.baselines = []
    run_job(cfg, resume=resume, overwrite=overwrite, progress=progress)
    return JointModel.from_pretrained(cfg.out)


def source_spec(data: Any, tables: Path) -> tuple[str, set[str] | None]:
    """A source spec for ``data`` and the splits it holds (None: the source's own business): a spec string as
    it is; rows in memory written as a ``pairs:`` table."""
    if isinstance(data, (str, Path)):
        return str(data), None
    rows = rows_of(data)
    return f"pairs:{write_table(rows, tables)}", {str(row["split"] or "") for row in rows}


def _fit_splits(cfg: RunConfig, splits: set[str] | None) -> None:
    """Rows in memory that name their splits: train on ``train``, select on ``val`` when there is one, report on
    ``test``. Rows that name none are cut by image when training starts (``data.heldout``), like any table
    without a split column."""
    if splits is None or splits == {""}:
        return
    if "" in splits:
        raise DataError("fit: some rows name a split and some do not; give every row one, or none")
    for needed in ("train", "test"):
        if needed not in splits:
            raise DataError(f"fit: no {needed!r} rows ({len(splits)} split(s): {', '.join(sorted(splits))}); give "
                            "train and test rows, or no split at all (training then cuts the images)")
    cfg.data.train_split, cfg.data.test_split = "train", "test"
    cfg.data.val_split = "val" if "val" in splits else ""


def rows_of(data: Any) -> list[dict[str, Any]]:
    """(image, text[, split]) tuples, a DataFrame or a ``datasets.Dataset`` → rows with image, text, split."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        records: Iterable[Any] = data.to_dict("records")
    elif hasattr(data, "column_names") and hasattr(data, "features"):  # datasets.Dataset: rows decoded (PIL)
        records = iter(data)
    else:
        records = list(data)
    rows = []
    for number, record in enumerate(records, 1):
        if isinstance(record, dict):
            missing = [c for c in ("image", "text") if c not in record]
            if missing:
                raise DataError(f"fit: row {number}: no column {missing[0]!r}; columns: {', '.join(record)}")
            rows.append({"image": record["image"], "text": record["text"], "split": record.get("split") or ""})
        elif isinstance(record, (tuple, list)) and len(record) in (2, 3):
            rows.append({"image": record[0], "text": record[1], "split": record[2] if len(record) == 3 else ""})
        else:
            raise DataError(f"fit: row {number}: expected (image, text) or (image, text, split), got {record!r:.80}")
    if not rows:
        raise DataError("fit: no rows")
    return rows


def write_table(rows: list[dict[str, Any]], tables: Path) -> Path:
    """Write rows as ``tables/<digest>/pairs.csv`` (images that are not paths saved beside it), once."""
    images = [_image_ref(row["image"], number) for number, row in enumerate(rows, 1)]
    with_split = any(row["split"] for row in rows)
    lines = [("image", "text", "split") if with_split else ("image", "text")]
    for (key, _), row in zip(images, rows):
        text = str(row["text"]).strip()
        if not text:
            raise DataError(f"fit: an empty caption for image {key}")
        lines.append((key, text, row["split"]) if with_split else (key, text))
    digest = hashlib.sha256(repr(lines).encode()).hexdigest()[:16]
    folder = tables / digest
    table = folder / "pairs.csv"
    if table.is_file():
        return table
    folder.mkdir(parents=True, exist_ok=True)
    for key, png in images:
        if png is not None and not (folder / key).exists():
            _write_atomic(folder / key, png)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    _write_atomic(table, buffer.getvalue().encode("utf-8"))
    return table


def _image_ref(image: Any, number: int) -> tuple[str, bytes | None]:
    """(what the table names, PNG bytes to write or None): a path is named as it is (absolute), an image in
    memory (PIL, an array, or a ``{"bytes", "path"}`` cell as Hugging Face stores images) by the digest of its
    PNG encoding."""
    if isinstance(image, (str, Path)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise DataError(f"fit: row {number}: image file {image} not found")
        return str(path.resolve()), None
    import numpy as np
    from PIL import Image

    from .encoders.images import array_image

    if isinstance(image, dict) and (image.get("bytes") or image.get("path")):  # an encoded image column
        if not image.get("bytes"):
            return _image_ref(image["path"], number)
        image = Image.open(io.BytesIO(image["bytes"]))
    try:
        if isinstance(image, Image.Image):
            picture = image
        else:
            picture = array_image(np.asarray(image))
    except (TypeError, ValueError, OSError) as exc:
        raise DataError(f"fit: row {number}: not an image path, PIL image, array or encoded image ({exc})") from None
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    png = buffer.getvalue()
    return f"{hashlib.sha256(png).hexdigest()[:20]}.png", png


def _write_atomic(path: Path, payload: bytes) -> None:
    from .utils import atomic

    with atomic.atomic_path(path) as tmp:
        Path(tmp).write_bytes(payload)
