"""Serve an index over HTTP: ``latentfuse serve --index INDEX`` (needs the ``[serve]`` extra)."""
from __future__ import annotations

import logging
import socket
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


def check_listen(host: str, port: int) -> None:
    """Refuse a host/port that cannot be listened on (in use, not an address of this machine) with a message,
    instead of uvicorn's log line and exit status 1 after the index has been loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise LatentfuseError(f"--host {host!r}: not a usable address ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise LatentfuseError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None


def run_server(index_dir: str | Path, config=None, model: str | Path | None = None) -> None:
    """Open the index and serve it with uvicorn until interrupted."""
    _require_fastapi()
    import uvicorn

    from ..index import open_index
    config = config or ServeConfig()
    check_listen(config.host, config.port)  # before loading anything: a busy port is a one-line error
    index = open_index(index_dir, model)
    index.model.to(config.runtime.device, config.runtime.precision, config.runtime.backend)
    app = create_app(index, config)
    logging.getLogger(__name__).info("serving %s on http://%s:%s/  (API docs: /docs)", index_dir, config.host,
                                        config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
