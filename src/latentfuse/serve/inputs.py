"""Turn an HTTP request into a checked query — every bad input becomes a 4xx with a message, never a 500.

A query is a text, an image, or both, plus ``k`` and an optional filter. It arrives as ``multipart/form-data``
(fields ``text`` (or ``q``), ``k``, file ``image``, repeatable ``source`` / ``split`` / ``label``: what the web page
and ``curl -F`` send) or as ``application/json`` (``{"text": ..., "k": ..., "image_base64": ..., "filter":
{"label": ["dog", "cat"]}}``). A filter names values, never SQL: the filter expression is built by the index
(``equals_filter``), since an arbitrary expression from a client can exhaust the server's memory.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..encoders.images import strict_load
from ..errors import LatentfuseError
from ..index.table import FILTER_COLUMNS, equals_filter
from .bodies import SearchForm, SearchJSON, check_fields, validate

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_PIXELS = 40_000_000  # a decompression bomb (tiny file, huge canvas) is refused before decoding


MAX_FILTER_VALUES = 32  # per column


@dataclass
class Query:
    text: str | None
    image: Image.Image | None
    k: int
    where: str | None = None
    """The index filter the request's ``filter`` / ``source``, ``split``, ``label`` fields make."""


async def read_query(request: Request, max_k: int, max_chars: int, *, need_k: bool = True) -> Query:
    """Parse and check the body of POST /search or /embed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        text, k, image_bytes, filters = await _from_form(request)
    elif ctype == "application/json":
        text, k, image_bytes, filters = await _from_json(request)
    else:
        raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
                                 "(fields text, k, file image) or application/json ({\"text\": ..., \"k\": ...})")
    text = check_text(text, max_chars)
    # decoding a large upload takes a while: off the event loop, so /health and text queries stay fast
    image = await run_in_threadpool(decode_image, image_bytes) if image_bytes is not None else None
    if text is None and image is None:
        raise HTTPException(422, "a query needs a non-empty text, an image, or both")
    where = check_filter(filters, max_chars)
    if where is not None and not need_k:
        raise HTTPException(422, "embed takes no filter: it searches nothing")
    return Query(text, image, check_k(k, max_k) if need_k else 0, where)


async def _from_form(request: Request) -> tuple[Any, Any, bytes | None, dict[str, Any]]:
    try:
        form = await request.form(max_files=1, max_fields=4 + len(FILTER_COLUMNS) * MAX_FILTER_VALUES)
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's error
        raise HTTPException(400, f"malformed form body: {exc}") from None
    check_fields(form.keys(), SearchForm)
    upload = form.get("image")
    image_bytes = None
    if isinstance(upload, UploadFile):
        image_bytes = await upload.read()
        if not image_bytes and not upload.filename:
            image_bytes = None  # an empty file control submitted by a browser: no image
    elif upload not in (None, ""):
        raise HTTPException(422, "field 'image' must be a file upload")
    filters = {column: form.getlist(column) for column in FILTER_COLUMNS if column in form}
    return form.get("text", form.get("q")), form.get("k", 10), image_bytes, filters


async def _from_json(request: Request) -> tuple[Any, Any, bytes | None, Any]:
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise HTTPException(422, "the JSON body must be an object like {\"text\": \"a dog\", \"k\": 10}")
    validate(body, SearchJSON)
    filters = body.get("filter")
    filters = {} if filters is None else filters
    return body.get("text"), body.get("k", 10), decode_base64(body.get("image_base64"), "image_base64"), filters


def check_filter(filters: Any, max_chars: int) -> str | None:
    """``{column: value or [values]}`` (columns: source, split, label) → the index filter, or a 422 naming the
    part that is wrong."""
    if not isinstance(filters, Mapping):
        raise HTTPException(422, 'filter must be an object like {"label": ["dog", "cat"]}, got '
                                 f"{type(filters).__name__}")
    values = {}
    for column, given in filters.items():
        listed = [given] if isinstance(given, str) else given
        if not isinstance(listed, list) or not listed or not all(isinstance(v, str) for v in listed):
            raise HTTPException(422, f"filter {column}: expected a string or a non-empty list of strings, got "
                                     f"{json.dumps(given)[:60]}")
        if len(listed) > MAX_FILTER_VALUES:
            raise HTTPException(422, f"filter {column}: {len(listed)} values; at most {MAX_FILTER_VALUES} are accepted")
        values[column] = [_filter_value(v, column, max_chars) for v in listed]
    try:
        return equals_filter(values)  # which columns a filter may name is decided there
    except LatentfuseError as exc:
        raise HTTPException(422, str(exc)) from None


def _filter_value(value: str, column: str, max_chars: int) -> str:
    if not value or len(value) > max_chars:
        raise HTTPException(422, f"filter {column}: values are 1 to {max_chars} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HTTPException(422, f"filter {column}: a value holds a lone surrogate; send valid Unicode") from None
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: NaN/Infinity (not JSON) and numbers that overflow a float are refused, and so is nesting
    deep enough to exhaust the parser's recursion — each a 400 with a message, never a 500."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise HTTPException(400, "malformed JSON body: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON body: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def decode_base64(encoded: Any, field: str) -> bytes | None:
    if encoded is None:
        return None
    if not isinstance(encoded, str):
        raise HTTPException(422, f"{field} must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{field} is not valid base64") from None


def check_text(text: Any, max_chars: int) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise HTTPException(422, f"text must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800" in JSON) is not text any encoder can read
        raise HTTPException(422, f"text holds a lone surrogate at character {exc.start}; send valid Unicode") from None
    text = text.strip()
    if len(text) > max_chars:
        raise HTTPException(422, f"text is {len(text)} characters; at most {max_chars} are accepted")
    return text or None


def check_k(k: Any, max_k: int) -> int:
    try:
        value = int(k)
        if isinstance(k, float) and k != value or isinstance(k, bool):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise HTTPException(422, f"k must be an integer between 1 and {max_k}, got {k!r}") from None
    if not 1 <= value <= max_k:
        raise HTTPException(422, f"k must be between 1 and {max_k}, got {value}")
    return value


def decode_image(data: bytes) -> Image.Image:
    """Bytes → RGB image, or a 4xx naming what is wrong (not an image, unsupported type, corrupt, huge)."""
    if not data:
        raise HTTPException(422, "the uploaded image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise HTTPException(415, f"image type {image.format} is not accepted; "
                                         f"send one of {', '.join(ALLOWED_FORMATS)}")
            if image.width * image.height > MAX_PIXELS:
                raise HTTPException(413, f"image is {image.width}×{image.height} pixels; at most "
                                         f"{MAX_PIXELS:,} pixels are accepted")
            strict_load(image)
    except HTTPException:
        raise
    except UnidentifiedImageError:
        raise HTTPException(415, f"the upload is not an image; send one of {', '.join(ALLOWED_FORMATS)}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise HTTPException(413, "image canvas is too large") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise HTTPException(422, f"the image is truncated or corrupt ({exc})") from None
    return image.convert("RGB")
