"""Server settings (no FastAPI import, so the CLI can build them without the [serve] extra)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 8 * 2**20
    """Largest request body (an uploaded image) accepted; larger ones get 413."""
    max_k: int = 100
    """Largest k a request may ask for."""
    max_query_chars: int = 2000
    """Longest text query accepted."""
    thumbnail_px: int = 256
    """Longest side of the JPEG thumbnails of image hits."""
    max_batch: int = 32
    """Most queries encoded in one call when requests arrive together."""
    batch_wait_ms: float = 2.0
    """How long the batcher waits for more queries after the first one."""
