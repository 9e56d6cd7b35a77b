"""Server settings (no FastAPI import, so the CLI can build them without the [serve] extra)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..config import HUBNESS_OVERRIDES, NonNegativeFloat, OneOf, Positive, Range, check_fields


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: Annotated[int, Range(0, 65535)] = 8000
    max_upload_bytes: Positive = 8 * 2**20
    """Largest request body (an uploaded image) accepted; larger ones get 413."""
    max_k: Positive = 100
    """Largest k a request may ask for."""
    max_query_chars: Positive = 2000
    """Longest text query accepted."""
    thumbnail_px: Annotated[int, Range(16, 4096)] = 256
    """Longest side of the JPEG thumbnails of image hits."""
    max_batch: Positive = 32
    """Most queries encoded in one call when requests arrive together."""
    batch_wait_ms: NonNegativeFloat = 2.0
    """How long the batcher waits for more queries after the first one."""
    index_name: str = ""
    """The name clip-retrieval clients pass as ``indice_name`` (default: the index folder's name)."""
    device: str = "auto"
    """Where the query encoders and heads run: auto | cpu | cuda | cuda:N | mps."""
    precision: Annotated[str, OneOf(("fp32", "bf16", "fp16"))] = "fp32"
    """Autocast precision of query encoding."""
    backend: Annotated[str, OneOf(("auto", "torch", "onnx", "onnx-int8"))] = "auto"
    """What runs the query encoders (as ``runtime.backend``): an index built with one backend is searched with
    the same one, or with torch / onnx, whose features agree."""

    hubness: Annotated[str, OneOf(HUBNESS_OVERRIDES)] = ""
    """Query-bank normalisation of text-only / image-only searches: '' = the model's setting | none | is | dis."""

    def __post_init__(self) -> None:
        check_fields(self, "serve options")
