"""Serve an index over HTTP: ``latentfuse serve --index INDEX`` (needs the ``[serve]`` extra)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import LatentfuseError
from .config import ServeConfig


def _require_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise LatentfuseError("serving needs FastAPI and uvicorn: pip install 'latentfuse[serve]'") from None


def create_app(index, config=None):
    """The FastAPI app over an open ``Index`` (see ``serve.app``)."""
    _require_fastapi()
    from .app import create_app as _create

    return _create(index, config)


def run_server(index_dir: str | Path, config=None, model: str | Path | None = None) -> None:
    """Open the index and serve it with uvicorn until interrupted."""
    _require_fastapi()
    import uvicorn

    from ..index import open_index
    config = config or ServeConfig()
    app = create_app(open_index(index_dir, model), config)
    logging.getLogger(__name__).info("serving %s on http://%s:%s/  (API docs: /docs)", index_dir, config.host,
                                        config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
