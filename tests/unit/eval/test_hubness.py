"""QB-Norm (inverted softmax, dynamic inverted softmax) against a direct transcription of the paper's formula,
in the retrieval metrics, the saved model, the index (exact and faiss) and the server."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentfuse.config import HubnessConfig
from latentfuse.errors import ModelError
from latentfuse.eval.retrieval import best_ranks
from latentfuse.hubness import GalleryNorm, gallery_norm
from latentfuse.index import BackendConfig, open_index
from latentfuse.methods import build_method
from latentfuse.model import BANK_FILE, JointModel, SideSpec
from helpers.shapes import saved_index


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_qb_norm(bank_sims: np.ndarray, test_sims: np.ndarray, beta: float, dynamic: bool) -> np.ndarray:
    """The official qb_norm(): exp(β·s) divided by the bank's column sums, on the rows whose top-1 is a hub
    (top-1 of some bank query) when dynamic, else on every row; float64, written out plainly."""
    hubs = set(np.argmax(bank_sims, axis=1).tolist())
    column_sums = np.exp(beta * bank_sims).sum(axis=0)
    out = test_sims.copy()
    for i, row in enumerate(test_sims):
        if not dynamic or int(np.argmax(row)) in hubs:
            out[i] = np.exp(beta * row) / column_sums
    return out


@pytest.mark.parametrize("dynamic", [False, True])
def test_rescore_is_the_log_of_the_papers_normalised_scores(dynamic):
    bank, gallery, queries = unit(40, 6, 0), unit(25, 6, 1), unit(30, 6, 2)
    beta = 7.0
    reference = reference_qb_norm(bank @ gallery.T, queries @ gallery.T, beta, dynamic)
    norm = gallery_norm(torch.from_numpy(bank).float(), torch.from_numpy(gallery).float(), beta, dynamic)
    ours = norm.rescore(torch.from_numpy(queries @ gallery.T).float()).double().numpy()
    hubs = set(np.argmax(bank @ gallery.T, axis=1).tolist())
    normalised = [not dynamic or int(np.argmax(row)) in hubs for row in queries @ gallery.T]
    assert 0 < sum(normalised) <= len(queries) and (dynamic or all(normalised))
    if dynamic:
        assert not all(normalised)  # both kinds of rows are exercised
    for i, was in enumerate(normalised):
        if was:
            np.testing.assert_allclose(np.exp(ours[i]), reference[i], rtol=1e-4)
        else:
            np.testing.assert_allclose(ours[i] / beta, reference[i], atol=1e-6)
    assert (np.argsort(-ours, axis=1, kind="stable") == np.argsort(-reference, axis=1, kind="stable")).all()
    assert norm.active.sum() == len(hubs)


def test_ranks_under_the_norm_match_ranks_read_off_the_reference_matrix():
    bank, gallery, queries = unit(60, 5, 3), unit(20, 5, 4), unit(50, 5, 5)
    relevant = [[i % 20, (3 * i) % 20] for i in range(50)]
    reference = reference_qb_norm(bank @ gallery.T, queries @ gallery.T, 10.0, dynamic=True)
    expected = [int((reference[i] > reference[i, rel].max()).sum()) for i, rel in enumerate(relevant)]
    norm = gallery_norm(torch.from_numpy(bank).float(), torch.from_numpy(gallery).float(), 10.0)
    got = best_ranks(torch.from_numpy(queries).float(), torch.from_numpy(gallery).float(), relevant, chunk=16,
                     norm=norm)
    assert got.tolist() == expected
    plain = best_ranks(torch.from_numpy(queries).float(), torch.from_numpy(gallery).float(), relevant)
    assert got.tolist() != plain.tolist()  # the norm changed something, so the comparison means something


def test_a_hub_stops_crowding_the_top():
    """One gallery item close to every bank query (a hub) wins every raw ranking; normalised, each query
    gets its own nearest non-hub item back."""
    gallery = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.6, 0.0, 0.8]])  # row 0: the hub
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.3, 0.0], [1.0, 0.0, 0.3]] * 5), dim=1)
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.35, 0.0], [1.0, 0.0, 0.35]]), dim=1)
    raw = queries @ gallery.T
    assert raw.argmax(1).tolist() == [0, 0]
    norm = gallery_norm(bank, gallery, beta=20.0, dynamic=False)
    assert norm.rescore(raw).argmax(1).tolist() == [1, 2]


def test_growing_the_gallery_equals_computing_it_whole():
    bank, first, more = (torch.from_numpy(unit(n, 4, s)).float() for n, s in ((30, 6), (10, 7), (15, 8)))
    grown = gallery_norm(bank, first, 12.0).grown(bank, more)
    whole = gallery_norm(bank, torch.cat([first, more]), 12.0)
    torch.testing.assert_close(grown.penalty, whole.penalty)
    torch.testing.assert_close(grown.best_score, whole.best_score)
    assert grown.best_row.tolist() == whole.best_row.tolist()


def tiny_model(bank: bool) -> JointModel:
    method = build_method("fusemix", {"image": 6, "text": 5}, {"dim": 4, "hidden": 8})
    sides = [SideSpec("image", "image", "fake-image", "f1"), SideSpec("text", "text", "fake-text:5", "f2")]
    model = JointModel(method, sides)
    if bank:
        x = {"image": torch.randn(30, 6, generator=torch.Generator().manual_seed(0)),
             "text": torch.randn(50, 5, generator=torch.Generator().manual_seed(1))}
        model.set_query_bank(x, HubnessConfig(norm="is", beta=9.0, bank_size=20, min_bank=8))
    return model


def test_the_query_bank_and_its_setting_survive_save_and_load(tmp_path):
    model = tiny_model(bank=True)
    assert {s: len(b) for s, b in model.query_bank.items()} == {"image": 20, "text": 20}
    model.save_pretrained(tmp_path / "m")
    loaded = JointModel.load(tmp_path / "m")
    assert loaded.hubness == HubnessConfig(norm="is", beta=9.0, bank_size=20, min_bank=8)
    for side in ("image", "text"):
        torch.testing.assert_close(loaded.query_bank[side], model.query_bank[side], atol=1e-3, rtol=1e-3)
    assert loaded.hubness_summary() == {"norm": "is", "beta": 9.0, "bank": {"image": 20, "text": 20}}
    gallery = torch.nn.functional.normalize(torch.randn(7, 4), dim=1)
    assert loaded.gallery_norm("text", gallery) is not None and loaded.gallery_norm("text", gallery, "none") is None

    plain = tiny_model(bank=False)
    plain.save_pretrained(tmp_path / "m", overwrite=True)  # other weights replace the folder, old bank and all
    again = JointModel.load(tmp_path / "m")
    assert not (tmp_path / "m" / BANK_FILE).exists() and again.query_bank == {}
    assert again.hubness_summary() == {"norm": "none"} and again.gallery_norm("text", gallery) is None
    with pytest.raises(ModelError, match="hubness dis needs a query bank of side 'text'; this model's banks: none"):
        again.gallery_norm("text", gallery, "dis")


def brute_force(index, query: np.ndarray, side: str, norm: str, k: int) -> list[int]:
    """Row numbers ranked by the reference formula over every item (no backend, no candidates)."""
    bank = index.model.query_bank[side].double().numpy()
    raw = (query[None, :].astype(np.float64) @ index.embeddings.T.astype(np.float64))
    scored = reference_qb_norm(bank @ index.embeddings.T.astype(np.float64), raw, index.model.hubness.beta,
                               dynamic=norm == "dis")[0]
    return index.rows[np.argsort(-scored, kind="stable")[:k]].tolist()


@pytest.mark.parametrize("norm", ["is", "dis"])
def test_index_search_under_the_norm_matches_the_reference(shapes, tmp_path, norm):
    index = open_index(saved_index(shapes, tmp_path / "index").directory)
    assert set(index.model.query_bank) == {"image", "text"}
    index.hubness = norm
    at = {int(row): position for position, row in enumerate(index.rows)}
    for text in ("a red circle", "a blue square", "something green"):
        hits = index.search(text=text, k=8)
        vector = index.query_vector(text=text)
        assert [h.row for h in hits] == brute_force(index, vector, "text", norm, 8)
        raw = vector @ index.embeddings.T
        assert [h.cosine for h in hits] == pytest.approx([float(raw[at[h.row]]) for h in hits], abs=1e-5)
        ranked = index.model.retriever("text", index.embeddings, norm).ranked(vector[None, :])[0]
        assert [h.score for h in hits] == pytest.approx([float(ranked[at[h.row]]) for h in hits], abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # the score ranked by


@pytest.mark.parametrize("kind", ["ivf-pq", "ivf-rq", "hnsw"])
def test_an_ann_kind_reranks_its_candidates_like_exact(shapes, tmp_path, kind):
    exact = open_index(saved_index(shapes, tmp_path / "index").directory)
    exact.hubness = "dis"
    approximate = open_index(exact.directory)
    approximate.hubness = "dis"
    approximate.use_backend(BackendConfig(kind=kind))  # its candidates from LanceDB, QB-Norm on their penalties
    for text in ("a red circle", "a yellow triangle"):
        assert [h.row for h in approximate.search(text=text, k=5)] == [h.row for h in exact.search(text=text, k=5)]
        assert [h.score for h in approximate.search(text=text, k=5)] == pytest.approx(
            [h.score for h in exact.search(text=text, k=5)], abs=1e-4)


def test_index_saves_its_statistics_and_keeps_them_current_as_it_grows(shapes, tmp_path, monkeypatch):
    import latentfuse.model.bank as model_module  # where the query bank builds gallery statistics
    from latentfuse.index import Index
    from latentfuse.index.table import penalty_column

    folder = saved_index(shapes, tmp_path / "index").directory
    assert (folder / "hubness.npz").is_file()
    calls = []
    real = model_module.gallery_norm
    monkeypatch.setattr(model_module, "gallery_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    index = open_index(folder)
    index.hubness = "dis"
    index.search(text="a red circle", k=3)
    assert calls == []  # penalties from the table, bank bests from hubness.npz: nothing recomputed
    vectors, records = index.embeddings.copy(), list(index.records_of(index.rows.tolist()).values())
    grown = Index.create(tmp_path / "grown", shapes["model"])
    grown.append(vectors[:10], records[:10])
    grown.append(vectors[10:], records[10:])  # grows the statistics: the new rows against the bank only
    grown.save()
    reopened = open_index(tmp_path / "grown")
    whole = real(index.model.query_bank["text"], torch.from_numpy(reopened.embeddings), index.model.hubness.beta)
    saved = reopened.table.read([penalty_column("text")]).column(0).to_numpy()
    np.testing.assert_allclose(saved, whole.penalty.numpy(), rtol=1e-5, atol=1e-5)
    assert reopened.bank_bests()["text"].best_row.tolist() == reopened.rows[whole.best_row.numpy()].tolist()


def test_eval_retrieval_applies_the_norm_it_reports(shapes, monkeypatch):
    from latentfuse.config import StoreConfig
    from latentfuse.data import build_source
    from latentfuse.eval.retrieval import hub_norms, retrieval_metrics
    from latentfuse.eval.tasks import task
    from latentfuse.pipeline import side_encoders, split_features

    model = JointModel.load(shapes["model"])
    store = StoreConfig(root=str(shapes["store"]))
    spec = f"pairs:{shapes['pairs']}"
    plain = task("retrieval").run(model, spec, None, store, progress=False)
    assert plain["hubness"] == {"norm": "none"}  # the model's own setting
    rescored = []
    real = GalleryNorm.rescore
    monkeypatch.setattr(GalleryNorm, "rescore", lambda self, *a: rescored.append(len(self.penalty)) or real(self, *a))
    normed = task("retrieval").run(model, spec, None, store, {"hubness": "is"}, progress=False)
    assert sorted(set(rescored)) == [40, 120]  # both directions: captions against 40 images, and back
    assert normed["hubness"] == {"norm": "is", "beta": 14.0, "bank": {"image": 40, "text": 120}}
    source = build_source(spec)
    data = split_features(source, source.splits()[0], side_encoders(source, {"image": "efficientnet-lite0",
                                                                            "text": "minilm-l6"}), store)
    ea, eb = model.encode_features("image", data.x["image"]), model.encode_features("text", data.x["text"])
    direct = retrieval_metrics(torch.from_numpy(ea), torch.from_numpy(eb), data.pairs,
                               norms=hub_norms(model, "image", "text", ea, eb, "is"))
    assert normed["metrics"] == {"t2i": direct["b2a"], "i2t": direct["a2b"]}
    with pytest.raises(Exception, match="hubness"):
        task("retrieval").run(model, spec, None, store, {"hubness": "sometimes"}, progress=False)


def test_a_damaged_query_bank_is_a_one_line_error(tmp_path):
    from safetensors.torch import save_file

    tiny_model(bank=True).save_pretrained(tmp_path / "m")
    save_file({"text": torch.zeros(3, 7)}, str(tmp_path / "m" / BANK_FILE))
    with pytest.raises(ModelError, match=r"query_bank.safetensors: the bank of side 'text' must be finite \(n > 0, 4\) "
                                         r"embeddings, got \(3, 7\)"):
        JointModel.load(tmp_path / "m")
    save_file({"text": torch.zeros(0, 4)}, str(tmp_path / "m" / BANK_FILE))  # empty: was a ValueError in eval
    with pytest.raises(ModelError, match=r"must be finite \(n > 0, 4\) embeddings, got \(0, 4\)"):
        JointModel.load(tmp_path / "m")
    (tmp_path / "m" / BANK_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="query_bank.safetensors: not a readable safetensors file"):
        JointModel.load(tmp_path / "m")


def test_the_server_ranks_like_the_index_under_its_hubness_setting(shapes, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentfuse.serve import ServeConfig, create_app

    folder = saved_index(shapes, tmp_path / "index").directory
    queries = ("a red circle", "one blue square on white", "a yellow shape")
    expected = {}
    for norm in ("none", "dis"):
        index = open_index(folder)
        index.hubness = norm
        expected[norm] = [[h.id for h in index.search(text=q, k=12)] for q in queries]
    assert expected["none"] != expected["dis"]  # the setting changes rankings here, so the check means something
    for setting, norm in (("", "none"), ("dis", "dis")):  # '' = the model's own setting: none for this model
        with TestClient(create_app(open_index(folder), ServeConfig(hubness=setting))) as client:
            got = [[r["id"] for r in client.get("/search", params={"q": q, "k": 12}).json()["results"]]
                   for q in queries]
            assert got == expected[norm], setting
            knn = client.post("/knn-service", json={"text": queries[0], "modality": "image", "num_images": 12,
                                                    "indice_name": folder.name}).json()
            assert [r["item_id"] for r in knn] == expected[norm][0]


def test_a_bank_too_small_to_estimate_hubness_is_skipped_with_a_log_line(tmp_path, caplog):
    """QB-Norm from a 35-query bank used to be applied silently; below hubness.min_bank (measured: 512) it is
    skipped, the model keeps no bank, a report says none, and an explicit ask says why it cannot."""
    import logging

    method = build_method("fusemix", {"image": 6, "text": 5}, {"dim": 4, "hidden": 8})
    model = JointModel(method, [SideSpec("image", "image", "fake-image", "f1"), SideSpec("text", "text", "t", "f2")])
    x = {"image": torch.randn(35, 6), "text": torch.randn(600, 5)}
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        model.set_query_bank(x, HubnessConfig(norm="dis", beta=14.0, bank_size=8192))
    assert "QB-Norm (dis) skipped for 35 image queries: a query bank needs at least 512" in caplog.text
    assert set(model.query_bank) == {"text"} and len(model.query_bank["text"]) == 600
    gallery = torch.nn.functional.normalize(torch.randn(7, 4), dim=1)
    assert model.gallery_norm("image", gallery) is None and model.gallery_norm("text", gallery) is not None
    model.save_pretrained(tmp_path / "m")
    assert set(JointModel.load(tmp_path / "m").query_bank) == {"text"}
    with pytest.raises(ModelError, match="hubness dis needs a query bank of side 'image'; this model's banks: text"):
        model.gallery_norm("image", gallery, "dis")
