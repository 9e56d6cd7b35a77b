"""The HTTP API: same answers as the index and the CLI, bad input → 4xx with a message (never a 500),
concurrent requests served and batched."""
from __future__ import annotations

import re

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from click.testing import CliRunner

from latentfuse.cli import app as cli
from latentfuse.index import open_index
from latentfuse.serve import ServeConfig, create_app
from latentfuse.serve.batcher import Batcher
from helpers.live import live_server
from helpers.shapes import VARIANTS, is_match, saved_index


@pytest.fixture(scope="module")
def index_dir(shapes, tmp_path_factory):
    return saved_index(shapes, tmp_path_factory.mktemp("serve") / "ix").directory


@pytest.fixture(scope="module")
def client(index_dir):
    with TestClient(create_app(open_index(index_dir), ServeConfig(max_upload_mb=200_000 / 2**20, max_k=50))) as c:
        yield c


def png(path) -> bytes:
    return path.read_bytes()


def test_health_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["items"] == 8 * VARIANTS and health["modality"] == "image"
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text and 'type="file"' in page.text
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_api_docs_are_served_from_the_server_itself(client):
    """/docs and /redoc load Swagger UI / ReDoc from this server (an offline machine has no CDN), and the
    request bodies they show are the pydantic models', unknown fields refused."""
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(url.endswith(script) for url in urls) and not any(url.startswith("http") for url in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url
    body = client.get("/openapi.json").json()["paths"]["/search"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert schema["additionalProperties"] is False and set(schema["properties"]) == {"text", "k", "image_base64", "filter"}
    knn = client.get("/openapi.json").json()["paths"]["/knn-service"]["post"]["requestBody"]["content"]
    assert set(knn["application/json"]["schema"]["required"]) == {"modality", "num_images", "indice_name"}


def test_api_cli_and_python_agree_on_the_top_10(client, index_dir):
    python = [h.id for h in open_index(index_dir).search(text="a yellow circle", k=10)]
    cli_out = CliRunner().invoke(cli, ["search", "--index", str(index_dir), "a yellow circle", "-k", "10", "--json"])
    via_cli = [r["id"] for r in json.loads(cli_out.output)["results"]]
    via_get = [r["id"] for r in client.get("/search", params={"q": "a yellow circle", "k": 10}).json()["results"]]
    via_form = [r["id"] for r in client.post("/search", data={"text": "a yellow circle", "k": "10"}).json()["results"]]
    via_json = [r["id"] for r in client.post("/search", json={"text": "a yellow circle", "k": 10}).json()["results"]]
    assert python == via_cli == via_get == via_form == via_json
    assert all(is_match(i, "yellow", "circle") for i in python[:VARIANTS])


def test_image_upload_finds_itself_and_results_link_thumbnails(client, shapes):
    body = png(shapes["images"] / "green" / "square-3.png")
    response = client.post("/search", files={"image": ("q.png", body, "image/png")}, data={"k": "3"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["id"] == "green/square-3.png" and results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert all(is_match(r["id"], "green", "square") for r in results)
    thumb = client.get(results[0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 128)  # never upscaled
    assert client.get(results[0]["image_url"]).content == body
    as_json = client.post("/search", json={"image_base64": base64.b64encode(body).decode(), "k": 1}).json()
    assert as_json["results"][0]["id"] == "green/square-3.png"


def test_text_and_image_together_combine(client, shapes):
    body = png(shapes["images"] / "red" / "circle-0.png")
    both = client.post("/search", files={"image": ("q.png", body, "image/png")},
                       data={"text": "a red square", "k": "10"}).json()
    assert both["text"] == "a red square" and both["image"] is True
    ids = [r["id"] for r in both["results"]]  # "like this red circle, but a red square": red, both shapes
    assert all(i.startswith("red/") for i in ids), ids
    assert {"circle", "square"} == {i.split("/")[1].split("-")[0] for i in ids}, ids


def test_embed_returns_the_joint_vector(client, index_dir, shapes):
    vector = np.array(client.post("/embed", json={"text": "a blue circle"}).json()["embedding"])
    expected = open_index(index_dir).query_vector(text="a blue circle")
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    body = png(shapes["images"] / "red" / "circle-0.png")
    both = client.post("/embed", data={"text": "x"}, files={"image": ("q.png", body, "image/png")})
    assert both.status_code == 422 and both.json()["detail"] == "embed takes a text or an image, not both"


def corrupt_png(shapes) -> bytes:
    return png(shapes["images"] / "red" / "circle-0.png")[:200]


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"params": {"q": "dog", "k": 0}}, 422, "k must be between 1 and 50, got 0"),
    ({"params": {"q": "dog", "k": 51}}, 422, "k must be between 1 and 50, got 51"),
    ({"params": {"q": "dog", "k": "many"}}, 422, "k must be an integer between 1 and 50, got 'many'"),
    ({"params": {"q": "   "}}, 422, "q must be a non-empty text"),
    ({"params": {"q": "x" * 2001}}, 422, "at most 2000 are accepted"),
    ({"params": {}}, 422, "q"),
])
def test_bad_get_queries_are_4xx_with_a_message(client, request_kwargs, status, message):
    response = client.get("/search", **request_kwargs)
    assert response.status_code == status
    assert message in json.dumps(response.json()["detail"])


def bad_posts(shapes):
    return [
        ({"data": {"k": "5"}}, 422, "a query needs a non-empty text, an image, or both"),
        ({"files": {"image": ("a.txt", b"just text", "text/plain")}}, 415, "the upload is not an image"),
        ({"files": {"image": ("a.png", corrupt_png(shapes), "image/png")}}, 422, "truncated or corrupt"),
        ({"files": {"image": ("a.png", b"", "image/png")}}, 422, "the uploaded image is empty"),
        ({"files": {"image": ("big.png", b"0" * 300_000, "image/png")}}, 413, "the limit is 200,000 bytes"),
        ({"data": {"text": "dog", "image": "not a file"}}, 422, "field 'image' must be a file upload"),
        ({"content": b"{broken", "headers": {"content-type": "application/json"}}, 400, "malformed JSON body"),
        ({"json": ["a", "list"]}, 422, "the JSON body must be an object"),
        ({"json": {"text": 7}}, 422, "text must be a string, got int"),
        ({"json": {"image_base64": "***"}}, 422, "image_base64 is not valid base64"),
        ({"json": {"text": "dog", "k": 2.5}}, 422, "k must be an integer"),
        ({"content": b"text=dog", "headers": {"content-type": "text/plain"}}, 415, "unsupported content type"),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}}, 400,
         "malformed form body"),  # no boundary
    ]


def test_bad_posts_are_4xx_with_a_message(client, shapes):
    for kwargs, status, message in bad_posts(shapes):
        response = client.post("/search", **kwargs)
        assert response.status_code == status, (kwargs.keys(), response.status_code, response.text)
        assert message in response.json()["detail"], response.json()


def test_gif_bmp_webp_and_jpeg_uploads_are_accepted_other_types_not(client, shapes, index_dir):
    image = Image.open(shapes["images"] / "blue" / "circle-1.png").convert("RGB")
    index = open_index(index_dir)
    for fmt in ("GIF", "BMP", "WEBP", "JPEG"):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        response = client.post("/search", files={"image": ("q", buffer.getvalue(), "application/octet-stream")},
                               data={"k": "3"})
        assert response.status_code == 200, fmt
        ids = [r["id"] for r in response.json()["results"]]
        assert ids == [h.id for h in index.search(image=Image.open(io.BytesIO(buffer.getvalue())), k=3)], fmt
        if fmt != "JPEG":  # lossless: the very image comes back first
            assert ids[0] == "blue/circle-1.png", fmt
    buffer = io.BytesIO()
    image.save(buffer, format="ICO")
    response = client.post("/search", files={"image": ("q.ico", buffer.getvalue(), "image/x-icon")})
    assert response.status_code == 415 and "image type ICO is not accepted" in response.json()["detail"]


def test_unknown_items_are_404(client):
    assert client.get("/items/9999/thumbnail").status_code == 404
    assert "no item -1" in client.get("/items/-1/image").json()["detail"]
    assert client.get("/nope").status_code == 404


def test_concurrent_requests_over_a_real_socket_are_all_answered_correctly(index_dir):
    app = create_app(open_index(index_dir))
    queries = [f"a {c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square")] * 3
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        def ask(q: str) -> list[str]:
            response = http.get("/search", params={"q": q, "k": VARIANTS})
            assert response.status_code == 200
            return [r["id"] for r in response.json()["results"]]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, queries))
    for query, ids in zip(queries, answers):
        _, color, shape = query.split()
        assert all(is_match(i, color, shape) for i in ids), (query, ids)
    batcher = app.state.batcher
    assert batcher.items == len(queries) + 2  # + the text and image warm-up queries


def test_batcher_coalesces_waiting_queries_and_isolates_a_failing_one():
    calls: list[list[str]] = []

    def encode(modality: str, payloads: list[str]) -> np.ndarray:
        calls.append(list(payloads))
        time.sleep(0.2)
        if "bad" in payloads:
            raise ValueError("bad query")
        return np.array([[len(p)] for p in payloads], dtype=np.float32)

    batcher = Batcher(encode, max_batch=32, wait_s=0.01)
    results: dict[str, object] = {}

    def submit(payload: str) -> None:
        try:
            results[payload] = float(batcher.submit("text", payload)[0])
        except ValueError as exc:
            results[payload] = str(exc)

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    time.sleep(0.05)  # the worker is now busy with "first"; the next six queue up behind it
    others = [threading.Thread(target=submit, args=(p,)) for p in ("a", "bb", "ccc", "bad", "dddd", "eeeee")]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(timeout=10)
    batcher.close()
    assert calls[0] == ["first"] and sorted(calls[1]) == sorted(["a", "bb", "ccc", "bad", "dddd", "eeeee"])
    assert results == {"first": 5.0, "a": 1.0, "bb": 2.0, "ccc": 3.0, "bad": "bad query", "dddd": 4.0,
                       "eeeee": 5.0}


def test_serve_command_serves_the_index(index_dir):
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "latentfuse.cli", "serve", "--index", str(index_dir),
                                "--port", str(port), "--max-k", "7"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert health["items"] == 8 * VARIANTS
        too_many = httpx.get(f"http://127.0.0.1:{port}/search", params={"q": "a red circle", "k": 8})
        assert too_many.status_code == 422 and "between 1 and 7" in too_many.json()["detail"]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_command_names_a_missing_index(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path)])
    assert result.exit_code != 0 and "not a latentfuse index (index.json is missing)" in str(result.exception)


def test_a_file_deleted_after_indexing_is_a_404_not_a_500(shapes, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(shapes["images"] / "red", folder / "red")
    index = saved_index(shapes, tmp_path / "ix", f"images:{folder}", store=tmp_path / "store")
    row = index.row_of("red/circle-0.png")
    (folder / "red" / "circle-0.png").unlink()
    with TestClient(create_app(index)) as c:
        thumb = c.get(f"/items/{row}/thumbnail")
        assert thumb.status_code == 404 and "red/circle-0.png" in thumb.json()["detail"]
        image = c.get(f"/items/{row}/image")
        assert image.status_code == 404 and "is gone" in image.json()["detail"]
        assert c.get(f"/items/{row + 1}/thumbnail").status_code == 200


def test_a_caption_index_answers_an_image_with_texts(shapes, tmp_path):
    index = saved_index(shapes, tmp_path / "captions", f"pairs:{shapes['pairs']}", side="text")
    with TestClient(create_app(index)) as c:
        assert c.get("/health").json()["modality"] == "text"
        body = png(shapes["images"] / "yellow" / "square-1.png")
        results = c.post("/search", files={"image": ("q.png", body, "image/png")}, data={"k": "3"}).json()["results"]
        assert all(r["modality"] == "text" and r["thumbnail_url"] is None for r in results)
        assert all("yellow" in r["text"] and "square" in r["text"] for r in results), results
        thumb = c.get("/items/0/thumbnail")
        assert thumb.status_code == 404 and "this index holds texts" in thumb.json()["detail"]


def test_similar_items_use_the_stored_embedding(client):
    first = client.get("/search", params={"q": "a blue square", "k": 1}).json()["results"][0]
    similar = client.get(f"/items/{first['row']}/similar", params={"k": VARIANTS}).json()
    assert similar["k"] == VARIANTS and similar["results"][0]["id"] == first["id"]
    assert similar["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert all(is_match(r["id"], "blue", "square") for r in similar["results"])
    assert client.get("/items/40/similar").status_code == 404
    assert "between 1 and 50" in client.get("/items/0/similar", params={"k": 99}).json()["detail"]


def test_an_index_of_tar_shards_serves_each_image_from_its_shard(shapes, tmp_path):
    """webdataset: items have no file of their own: search finds them, /image answers the member's own bytes
    with its media type, /thumbnail decodes it — all from the shard, after a reopen too."""
    import tarfile

    files = sorted((shapes["images"] / "red").glob("*.png"))[:4]
    with tarfile.open(tmp_path / "00000.tar", "w") as archive:
        for number, path in enumerate(files):
            archive.add(path, arcname=f"{number:05d}.png")
            text = tarfile.TarInfo(f"{number:05d}.txt")
            caption = f"a red {path.stem.split('-')[0]}".encode()
            text.size = len(caption)
            archive.addfile(text, io.BytesIO(caption))
    saved_index(shapes, tmp_path / "ix", f"webdataset:{tmp_path / '00000.tar'}", store=tmp_path / "store")
    with TestClient(create_app(open_index(tmp_path / "ix"))) as c:
        hits = c.post("/search", json={"text": "a red circle", "k": 4}).json()["results"]
        assert len(hits) == 4
        row = hits[0]["row"]
        image = c.get(f"/items/{row}/image")
        number = int(hits[0]["id"])  # the sample's key: its position in the shard
        assert image.status_code == 200 and image.headers["content-type"] == "image/png", image.text
        assert image.content == files[number].read_bytes()
        assert c.get(f"/items/{row}/thumbnail").status_code == 200


def test_a_filter_names_values_and_the_server_builds_the_expression(shapes, tmp_path):
    """GET parameters, form fields and a JSON ``filter`` object give what ``Index.search(where=...)`` gives; a value
    is a value (quotes inside it are not SQL), bad filters are 422s naming what was expected."""
    index = saved_index(shapes, tmp_path / "ix", data=f"imagefolder:{shapes['images']}")  # labels: the colours
    expected = [h.id for h in index.search(text="a red circle", k=50, where="label IN ('blue', 'green')")]
    assert len(expected) == 4 * VARIANTS and {i.split("/")[0] for i in expected} == {"blue", "green"}
    with TestClient(create_app(open_index(tmp_path / "ix"), ServeConfig(max_k=50))) as client:
        via_get = client.get("/search", params={"q": "a red circle", "k": 50, "label": ["blue", "green"]}).json()
        via_form = client.post("/search", data={"text": "a red circle", "k": "50", "label": ["blue", "green"]}).json()
        via_json = client.post("/search", json={"text": "a red circle", "k": 50,
                                                "filter": {"label": ["blue", "green"], "split": "all"}}).json()
        assert [r["id"] for r in via_get["results"]] == [r["id"] for r in via_form["results"]] == \
            [r["id"] for r in via_json["results"]] == expected
        similar = client.get("/items/0/similar", params={"k": 50, "label": "yellow"}).json()["results"]
        assert len(similar) == 2 * VARIANTS and all(r["id"].startswith("yellow/") for r in similar)
        injected = client.post("/search", json={"text": "a red circle", "filter": {"label": "x' OR '1'='1"}}).json()
        assert injected["results"] == []
        for body, message in [({"filter": {"colour": "red"}}, "filter: no column 'colour'; filter by source, split, label"),
                              ({"filter": "label = 'red'"}, "filter must be an object"),
                              ({"filter": {"label": []}}, "filter label: expected a string or a non-empty list"),
                              ({"filter": {"label": [1]}}, "filter label: expected a string or a non-empty list"),
                              ({"filter": {"label": ["red"] * 33}}, "filter label: 33 values; at most 32"),
                              ({"filter": {"label": ""}}, "filter label: values are 1 to 2000 characters")]:
            response = client.post("/search", json={"text": "a dog", **body})
            assert response.status_code == 422 and message in response.json()["detail"], response.text
        response = client.post("/embed", json={"text": "a dog", "filter": {"label": "red"}})
        assert response.status_code == 422 and "embed takes no filter" in response.json()["detail"]
