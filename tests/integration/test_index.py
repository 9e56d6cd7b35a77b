"""Index: build from a collection, search by text / image from Python and the CLI, grow incrementally,
refuse another model, commit atomically; backends checked against a plain brute-force reference."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.errors import DataError
from latentfuse.index import Index, BadIndexError, open_index
from latentfuse.index.backends import ExactBackend
from latentfuse.model import JointModel
from helpers.shapes import COLORS, SHAPES, VARIANTS, is_match

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes_index(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("index") / "shapes"
    result = runner.invoke(app, ["index", "--model", str(shapes["model"]), "--data", f"images:{shapes['images']}",
                                 "--out", str(out), "--store", str(shapes["store"])])
    assert result.exit_code == 0, result.output
    assert f"{len(COLORS) * len(SHAPES) * VARIANTS} image items ({len(COLORS) * len(SHAPES) * VARIANTS} added)" \
        in result.output
    return out


def test_text_queries_find_their_shapes(shapes_index):
    index = open_index(shapes_index)
    for color in COLORS:
        for shape in SHAPES:
            hits = index.search(text=f"a {color} {shape}", k=VARIANTS)
            assert [is_match(h.id, color, shape) for h in hits] == [True] * VARIANTS, (color, shape, hits)
            assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_image_query_finds_itself_first_and_its_kind_next(shapes, shapes_index):
    index = open_index(shapes_index)
    hits = index.search(image=shapes["images"] / "blue" / "square-2.png", k=3)
    assert hits[0].id == "blue/square-2.png" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(is_match(h.id, "blue", "square") for h in hits)
    assert hits[0].payload == str(shapes["images"] / "blue" / "square-2.png")


def test_cli_search_json_matches_python(shapes_index):
    result = runner.invoke(app, ["search", "--index", str(shapes_index), "a green circle", "-k", "10", "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)["results"]
    python = open_index(shapes_index).search(text="a green circle", k=10)
    assert [r["id"] for r in cli] == [h.id for h in python]
    assert [r["score"] for r in cli] == pytest.approx([h.score for h in python])
    table = runner.invoke(app, ["search", "--index", str(shapes_index), "a green circle", "-k", "3"])
    assert table.exit_code == 0 and "green/circle-" in table.output


def test_cli_search_needs_a_query(shapes_index):
    result = runner.invoke(app, ["search", "--index", str(shapes_index)])
    assert result.exit_code != 0 and "give a text QUERY, --image PATH, or both" in str(result.exception)


def test_adding_more_items_encodes_only_the_new_ones(shapes, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(shapes["images"] / "red", folder / "red")
    store = StoreConfig(root=str(tmp_path / "store"))
    index = Index.create(tmp_path / "ix", shapes["model"])
    assert index.add_source(build_source(f"images:{folder}"), store=store, progress=False) == 2 * VARIANTS
    index.save()
    before = open_index(tmp_path / "ix")
    old_rows, before_rows = np.array(before.embeddings), np.array(before.rows)

    shutil.copytree(shapes["images"] / "blue", folder / "blue")
    encoder = before.model.encoder(before.side)
    encoded: list[int] = []
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda batch: encoded.append(len(batch)) or original(batch))
    assert before.add_source(build_source(f"images:{folder}"), store=store, progress=False) == 2 * VARIANTS
    before.save()
    assert sum(encoded) == 2 * VARIANTS  # the blue ones only

    after = open_index(tmp_path / "ix")
    assert len(after) == 4 * VARIANTS and len(after.ids_of(f"images:{folder}")) == 4 * VARIANTS
    np.testing.assert_array_equal(after.embeddings[np.isin(after.rows, before_rows)], old_rows)
    assert all(is_match(h.id, "blue", "circle") for h in after.search(text="a blue circle", k=VARIANTS))
    encoded.clear()
    assert after.add_source(build_source(f"images:{folder}"), store=store, progress=False) == 0
    assert encoded == []
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["hubness.npz", "index.json", "items.lance"]


def test_other_model_is_refused_with_a_clear_error(shapes, shapes_index, tmp_path):
    other = JointModel.load(shapes["model"])
    for tensor in other.method.state_dict().values():
        tensor.add_(0.01)
    other.save(tmp_path / "other")
    with pytest.raises(BadIndexError, match="was built with model fingerprint .* but .*other has fingerprint"):
        open_index(shapes_index, tmp_path / "other")
    result = runner.invoke(app, ["search", "--index", str(shapes_index), "--model", str(tmp_path / "other"), "x"])
    assert result.exit_code != 0 and "Rebuild the index" in str(result.exception)
    grow = runner.invoke(app, ["index", "--model", str(tmp_path / "other"), "--data", f"images:{shapes['images']}",
                               "--out", str(shapes_index)])
    assert grow.exit_code != 0 and "embeddings would not be comparable" in str(grow.exception)


def test_exact_backend_matches_a_brute_force_sort():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    x[7] = x[3]  # a tie: the lower row comes first
    q = rng.standard_normal((20, 16)).astype(np.float32)
    q[0] = x[3]
    scores, rows = ExactBackend(x).search(q, 10)
    for i in range(len(q)):
        reference = sorted(range(len(x)), key=lambda r: (-float(q[i] @ x[r]), r))[:10]
        assert list(rows[i]) == reference
        np.testing.assert_allclose(scores[i], [q[i] @ x[r] for r in reference], rtol=1e-5)
    assert list(rows[0][:2]) == [3, 7]
    scores, rows = ExactBackend(x[:4]).search(q[:1], 10)
    assert rows.shape == (1, 4)


def test_unknown_backend_is_an_error(shapes, tmp_path):
    result = runner.invoke(app, ["index", "--model", str(shapes["model"]), "--data", f"images:{shapes['images']}",
                                 "--out", str(tmp_path / "ix"), "--index-kind", "annoy"])
    assert result.exit_code != 0
    assert "--index-kind: expected one of '', exact, ivf, ivf-pq, ivf-rq, hnsw, got 'annoy'" in str(result.exception)


def test_text_items_can_be_indexed_and_found(shapes, tmp_path):
    index = Index.create(tmp_path / "captions", shapes["model"], side="text")
    added = index.add_source(build_source(f"pairs:{shapes['pairs']}"), store=StoreConfig(root=str(shapes["store"])),
                             progress=False)
    assert added == len(COLORS) * len(SHAPES) * VARIANTS * 3  # one text item per table row
    index.save()
    hits = open_index(tmp_path / "captions").search(image=shapes["images"] / "red" / "circle-0.png", k=3)
    assert all(h.modality == "text" and "red" in h.payload and "circle" in h.payload for h in hits), hits


def test_images_source_lists_image_files_recursively(tmp_path):
    from PIL import Image

    (tmp_path / "trip" / ".thumbs").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "trip" / "b.JPG", format="JPEG")
    Image.new("RGB", (8, 8)).save(tmp_path / "trip" / ".thumbs" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    source = build_source(f"images:{tmp_path}")
    assert source.splits() == ["all"]
    data = source.load("all")
    assert [item.id for item in data.items["image"]] == ["a.png", "trip/b.JPG"] and data.pairs == []
    with pytest.raises(DataError, match="images: directory .*none not found"):
        build_source(f"images:{tmp_path / 'none'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"images: no image files under {tmp_path / 'empty'}"):
        build_source(f"images:{tmp_path / 'empty'}").load("all")
    with pytest.raises(DataError, match="images needs a dir: write it as 'images:DIR'"):
        build_source("images")


def test_unreadable_image_is_named_or_skipped(shapes, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(shapes["images"] / "green", folder / "green")
    (folder / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = ["index", "--model", str(shapes["model"]), "--data", f"images:{folder}", "--out", str(tmp_path / "ix"),
            "--store", str(tmp_path / "store")]
    failed = runner.invoke(app, args)
    assert failed.exit_code != 0 and "broken.png" in str(failed.exception) and "--skip-bad" in str(failed.exception)
    assert not (tmp_path / "ix" / "index.json").exists()
    skipped = runner.invoke(app, args + ["--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert f"{2 * VARIANTS} image items" in skipped.output
