"""Server regressions named by the reliability issue: numbers JSON cannot hold, undecodable or lone-surrogate
text and pathological nesting get a 4xx with a detail; a slow image decode never stalls /health."""
from __future__ import annotations

import io
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from latentfuse.index import open_index
from latentfuse.serve import ServeConfig, create_app
from helpers.live import live_server
from helpers.shapes import saved_index


@pytest.fixture(scope="module")
def index(shapes, tmp_path_factory):
    return open_index(saved_index(shapes, tmp_path_factory.mktemp("rel") / "ix").directory)


@pytest.fixture(scope="module")
def client(index):
    with TestClient(create_app(index, ServeConfig(max_k=50))) as c:
        yield c


BODIES = {
    "k overflows a float": (b'{"text": "a red circle", "k": 1e400}', 400, "number 1e400 is out of range"),
    "k is Infinity": (b'{"text": "a red circle", "k": Infinity}', 400, "Infinity is not a JSON number"),
    "k is NaN": (b'{"text": "a red circle", "k": NaN}', 400, "NaN is not a JSON number"),
    "k is a huge integer": (b'{"text": "a", "k": 1' + b"0" * 400 + b"}", 422, "k must be between 1 and 50"),
    "k has 5000 digits": (b'{"text": "a", "k": 1' + b"0" * 5000 + b"}", 400, "malformed JSON body"),
    "deep nesting": (b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
    "deep object nesting": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "nested too deeply"),
    "not UTF-8": (b'{"text": "caf\xe9"}', 400, "malformed JSON body"),
    "lone surrogate": (b'{"text": "a \\ud800 b"}', 422, "lone surrogate at character 2"),
    "k as text": (b'{"text": "a", "k": "ten"}', 422, "k must be an integer between 1 and 50"),
}


K_ONLY = {"k is a huge integer", "k as text"}  # valid JSON whose k is wrong: /embed takes no k, so answers 200


@pytest.mark.parametrize("case", sorted(BODIES))
@pytest.mark.parametrize("path", ["/search", "/embed"])
def test_json_the_parser_cannot_hold_is_a_4xx(client, case, path):
    body, status, detail = BODIES[case]
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    if path == "/embed" and case in K_ONLY:
        assert response.status_code == 200 and response.json()["dim"] > 0
        return
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_knn_service_gets_the_same_strict_json(client):
    response = client.post("/knn-service", content=b'{"text": "a", "modality": "image", "indice_name": null, '
                                                   b'"num_images": Infinity}')
    assert response.status_code == 400 and "Infinity is not a JSON number" in response.json()["detail"]
    nested = client.post("/knn-service", content=b"[" * 200_000 + b"]" * 200_000)
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["detail"]


def test_get_search_with_odd_k_and_undecodable_query(client):
    assert client.get("/search", params={"q": "a", "k": "1e400"}).status_code == 422
    assert client.get("/search", params={"q": "a", "k": "Infinity"}).status_code == 422
    raw = client.get("/search?q=%ff%fe&k=3")  # not UTF-8 once percent-decoded
    assert raw.status_code in (200, 422) and ("detail" in raw.json() or "results" in raw.json())


def test_a_slow_image_decode_does_not_stall_health(index, monkeypatch):
    """Decoding runs in the thread pool: while one upload takes 1.5 s to decode, /health answers at once."""
    from latentfuse.serve import inputs

    real = inputs.decode_image
    started = threading.Event()

    def slow_decode(data: bytes):
        started.set()
        time.sleep(1.5)
        return real(data)

    monkeypatch.setattr(inputs, "decode_image", slow_decode)
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (215, 35, 35)).save(buffer, "PNG")
    with live_server(create_app(index, ServeConfig())) as base:
        upload = threading.Thread(target=lambda: httpx.post(f"{base}/search", files={"image": ("a.png", buffer.getvalue())},
                                                            data={"k": "3"}, timeout=60))
        upload.start()
        assert started.wait(30)
        latencies = []
        for _ in range(5):
            begin = time.perf_counter()
            assert httpx.get(f"{base}/health", timeout=30).status_code == 200
            latencies.append(time.perf_counter() - begin)
        text_began = time.perf_counter()
        assert httpx.get(f"{base}/search", params={"q": "a blue square", "k": 3}, timeout=30).status_code == 200
        text_latency = time.perf_counter() - text_began
        still_decoding = upload.is_alive()
        upload.join(60)
    assert still_decoding, "the decode finished before the probes: the test proved nothing"
    assert max(latencies) < 0.5 and text_latency < 1.0, (latencies, text_latency)


def test_every_probe_of_the_catalogue_is_a_4xx_with_a_detail(client, index):
    from latentfuse.serve.probes import bad_requests

    for name, request in bad_requests(index.directory.name).items():
        response = client.request(**request)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
        assert response.json().get("detail"), (name, response.text[:200])
