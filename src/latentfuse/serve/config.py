"""Server settings: the ``serve`` command's schema (``config.commands.ServeConfig``), re-exported here so the
server package names its own settings; no FastAPI import, so the CLI builds them without the [serve] extra."""
from __future__ import annotations

from ..config.commands import ServeConfig

__all__ = ["ServeConfig"]
