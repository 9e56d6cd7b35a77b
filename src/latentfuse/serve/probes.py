"""Malformed requests a latentfuse server must answer with a 4xx and a ``detail`` — quickly, never a 5xx.

One catalogue for the test suite (``tests/integration/test_serve_reliability.py``) and the load benchmark's mixed run
(``bench/serve_load.py``); also handy to probe a deployed server. Each probe is the keyword arguments of an
``httpx`` request (``method``, ``url`` and ``content`` / ``params`` / ``files`` / ``data`` / ``headers``).
"""
from __future__ import annotations

import base64
import io
from typing import Any

JSON = {"content-type": "application/json"}


def _png(size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def bad_requests(index_name: str = "ix") -> dict[str, dict[str, Any]]:
    """name → httpx request kwargs; every one must get a 4xx with a JSON ``detail``."""
    png = _png()
    truncated = png[: len(png) // 2]
    knn = '{{"modality": "image", "num_images": {k}, "indice_name": "{name}", "text": {text}}}'
    return {
        "json k=1e400": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "a", "k": 1e400}'),
        "json k=Infinity": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "a", "k": Infinity}'),
        "json k=NaN": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "a", "k": NaN}'),
        "json nested 100k": dict(method="POST", url="/search", headers=JSON, content=b"[" * 100_000 + b"]" * 100_000),
        "json not UTF-8": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "caf\xe9"}'),
        "json lone surrogate": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "\\ud800"}'),
        "json truncated": dict(method="POST", url="/search", headers=JSON, content=b'{"text": "a dog'),
        "json not an object": dict(method="POST", url="/search", headers=JSON, content=b"[1, 2, 3]"),
        "json bad base64": dict(method="POST", url="/search", headers=JSON, content=b'{"image_base64": "%%%"}'),
        "json truncated image": dict(method="POST", url="/search", headers=JSON, content=(
            '{"image_base64": "' + base64.b64encode(truncated).decode() + '"}').encode()),
        "form truncated image": dict(method="POST", url="/search", files={"image": ("a.png", truncated)},
                                     data={"k": "5"}),
        "form not an image": dict(method="POST", url="/search", files={"image": ("a.png", b"hello")}),
        "form k huge": dict(method="POST", url="/search", data={"text": "a", "k": "9" * 5000}),
        "no content type": dict(method="POST", url="/search", content=b"text=a"),
        "get k=Infinity": dict(method="GET", url="/search", params={"q": "a dog", "k": "Infinity"}),
        "get empty q": dict(method="GET", url="/search", params={"q": "   "}),
        "row out of range": dict(method="GET", url="/items/99999999/thumbnail"),
        "knn k=1e400": dict(method="POST", url="/knn-service",
                            content=knn.format(k="1e400", name=index_name, text='"a"').encode()),
        "knn wrong index": dict(method="POST", url="/knn-service",
                                content=knn.format(k="5", name="laion5B", text='"a"').encode()),
        "knn missing fields": dict(method="POST", url="/knn-service", content=b'{"text": "a dog"}'),
        "knn image_url": dict(method="POST", url="/knn-service", content=(
            knn.format(k="5", name=index_name, text="null")[:-1] + ', "image_url": "http://x/a.jpg"}').encode()),
    }
