"""clip-retrieval's own client, from PyPI, against a running latentfuse server on loopback: its text, image
and embedding queries come back with the same hits, in the same order, as ``Index.search``.

The wheel is installed --no-deps (its package ``__init__`` pulls torch, open_clip, flask), so
``clip_client.py`` is loaded from the installed files by path; it needs only ``requests``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import requests

from latentfuse.index import open_index
from latentfuse.serve import ServeConfig, create_app
from helpers.live import live_server
from helpers.shapes import VARIANTS, is_match, saved_index


def load_clip_client():
    spec = importlib.util.find_spec("clip_retrieval")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("clip-retrieval is not installed: `make test` installs it (pip install --no-deps clip-retrieval)")
    path = Path(next(iter(spec.submodule_search_locations))) / "clip_client.py"
    module_spec = importlib.util.spec_from_file_location("clip_client", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(shapes, tmp_path_factory):
    index = open_index(saved_index(shapes, tmp_path_factory.mktemp("clip") / "photos").directory)
    with live_server(create_app(index, ServeConfig(max_k=50))) as base:
        yield index, base


def test_clip_client_text_image_and_embedding_queries(served, shapes):
    index, base = served
    clip_client = load_clip_client()
    assert requests.get(f"{base}/indices-list", timeout=30).json() == ["photos"]
    client = clip_client.ClipClient(url=f"{base}/knn-service", indice_name="photos",
                                    modality=clip_client.Modality.IMAGE, num_images=10)

    by_text = client.query(text="a red circle")
    expected = index.search(text="a red circle", k=10)
    assert [r["id"] for r in by_text] == [h.row for h in expected]
    assert [r["similarity"] for r in by_text] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert all(is_match(r["item_id"], "red", "circle") for r in by_text[:VARIANTS])
    assert by_text[0]["url"] == f"{base}/items/{by_text[0]['id']}/image"
    assert requests.get(by_text[0]["url"], timeout=30).status_code == 200

    photo = next(Path(shapes["images"]).rglob("*.png"))
    by_image = client.query(image=str(photo))
    assert by_image[0]["item_id"] == photo.relative_to(shapes["images"]).as_posix()

    vector = index.embeddings[by_text[0]["id"]].tolist()
    by_vector = client.query(embedding_input=vector)
    assert by_vector[0]["id"] == by_text[0]["id"] and by_vector[0]["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_clip_client_mistakes_get_a_message_not_a_500(served):
    _, base = served
    clip_client = load_clip_client()
    wrong_name = clip_client.ClipClient(url=f"{base}/knn-service", indice_name="laion5B")
    assert "no index named 'laion5B'; this server has ['photos']" in wrong_name.query(text="a dog")["detail"]
    wrong_modality = clip_client.ClipClient(url=f"{base}/knn-service", indice_name="photos",
                                            modality=clip_client.Modality.TEXT)
    assert "this index holds images" in wrong_modality.query(text="a dog")["detail"]
    client = clip_client.ClipClient(url=f"{base}/knn-service", indice_name="photos")
    assert "fetches nothing from the network" in client.query(image="http://example.com/a.jpg")["detail"]
    assert "this index's model embeds in" in client.query(embedding_input=[1.0, 2.0])["detail"]
    post = requests.post(f"{base}/knn-service", data='{"text": "x"}', timeout=30)
    assert post.status_code == 422 and "field 'indice_name' is required" in post.json()["detail"]
