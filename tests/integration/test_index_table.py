"""The index on its LanceDB table: filters, delete / upsert by id, growth that writes only the new rows, a kill -9
during growth, a reader during a write, ANN kinds against exact, conversion of an old-format index."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.errors import LatentfuseError
from latentfuse.index import BackendConfig, Index, open_index
from latentfuse.index.bankstats import recompute
from latentfuse.index.collection import LegacyIndexError, Record
from helpers.shapes import COLORS, SHAPES, VARIANTS, is_match, saved_index

runner = CliRunner()


def unit(rng: np.random.Generator, n: int, dim: int, centers: np.ndarray | None = None) -> np.ndarray:
    x = rng.standard_normal((n, dim)) if centers is None else \
        centers[rng.integers(0, len(centers), n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, start: int = 0, label: str = "a") -> list[Record]:
    return [Record(f"item-{i}", "synthetic", "all", None, label) for i in range(start, start + n)]


def assert_bests_current(index: Index) -> None:
    """The saved QB-Norm statistics equal a recomputation from the rows."""
    for side, bank in index.model.query_bank.items():
        fresh = recompute(index.table, bank, index.model.hubness.beta)
        assert index.bank_bests()[side].best_row.tolist() == fresh.best_row.tolist(), side


def test_where_filters_before_ranking(shapes, tmp_path):
    index = open_index(saved_index(shapes, tmp_path / "ix").directory)
    hits = index.search(text="a red circle", k=50, where="id LIKE 'blue/%'")
    assert len(hits) == len(SHAPES) * VARIANTS and all(h.id.startswith("blue/") for h in hits)
    assert is_match(hits[0].id, "blue", "circle")  # among the blue ones, the circle still ranks first
    for kind in ("exact", "ivf-pq"):
        index.use_backend(BackendConfig(kind=kind))
        assert [h.id for h in index.search(text="a red circle", k=3, where="id LIKE 'green/%'")] == \
            [h.id for h in index.search(text="a red circle", k=100) if h.id.startswith("green/")][:3]
        with pytest.raises(LatentfuseError, match="where 'colour = 1': not a filter over the index's columns"):
            index.search(text="a red circle", where="colour = 1")
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "a square", "--where",
                                 "id LIKE 'yellow/%'", "--json", "-k", "100"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["results"]
    assert len(found) == len(SHAPES) * VARIANTS and all(r["id"].startswith("yellow/") for r in found)


def test_delete_and_upsert_by_id(shapes, tmp_path):
    index = saved_index(shapes, tmp_path / "ix")
    total = len(index)
    gone = [f"red/circle-{v}.png" for v in range(VARIANTS)]
    assert index.delete(gone) == VARIANTS
    reopened = open_index(tmp_path / "ix")
    assert len(reopened) == total - VARIANTS and not set(gone) & reopened.ids_of(f"images:{shapes['images']}")
    assert not any(h.id in gone for h in reopened.search(text="a red circle", k=total))
    assert_bests_current(reopened)
    assert reopened.delete(where="id LIKE 'red/%'") == (len(SHAPES) - 1) * VARIANTS
    with pytest.raises(LatentfuseError, match="not a filter over the index's columns"):
        reopened.delete(where="nonsense ===")

    # upsert: the blue items again, with other vectors; each keeps its row number, nothing is added
    blue = {h.id: h.row for h in reopened.search(text="blue", k=total, where="id LIKE 'blue/%'")}
    rng = np.random.default_rng(0)
    vectors = unit(rng, len(blue), reopened.model.dim)
    records = [Record(i, f"images:{shapes['images']}", "all", None) for i in blue]
    count = len(reopened)
    reopened.upsert(vectors, records)
    again = open_index(tmp_path / "ix")
    assert len(again) == count
    for (item_id, row), vector in zip(blue.items(), vectors):
        assert again.record(row).id == item_id
        np.testing.assert_allclose(again.vector(row), vector, atol=1e-6)
    assert_bests_current(again)
    result = runner.invoke(app, ["index", "--out", str(tmp_path / "ix"), "--delete", "blue/square-0.png"])
    assert result.exit_code == 0, result.output
    assert len(open_index(tmp_path / "ix")) == count - 1
    updated = runner.invoke(app, ["index", "--out", str(tmp_path / "ix"), "--data", f"images:{shapes['images']}",
                                  "--store", str(shapes["store"]), "--update"])
    assert updated.exit_code == 0, updated.output
    assert len(open_index(tmp_path / "ix")) == total  # the deleted ones back, the others replaced in place


def test_growth_writes_only_the_new_rows(shapes, tmp_path):
    index = Index.create(tmp_path / "ix", shapes["model"])
    rng = np.random.default_rng(1)
    dim = index.model.dim
    index.append(unit(rng, 20_000, dim), synthetic(20_000))
    index.save()
    table = tmp_path / "ix" / "items.lance"
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in table.rglob("*") if p.is_file()}
    index.append(unit(rng, 1000, dim), synthetic(1000, start=20_000))
    index.save()
    after = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in table.rglob("*") if p.is_file()}
    rewritten = [p.name for p, stat in before.items() if after.get(p) != stat]
    assert rewritten == ["latest_version_hint.json"]  # a 13-byte pointer; no data file is rewritten
    written = sum(size for p, (size, _) in after.items() if p not in before)
    row_bytes = dim * 4 + 4 * len(index.model.query_bank) + 40
    assert written < 2 * 1000 * row_bytes + 65536, (written, row_bytes)
    assert len(open_index(tmp_path / "ix")) == 21_000


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from latentfuse.index import Index
    from latentfuse.index.collection import Record
    index = Index.create(sys.argv[1], sys.argv[2])
    index.save()
    rng = np.random.default_rng(0)
    for i in range(10_000):
        x = rng.standard_normal((50, index.model.dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index.append(x, [Record(f"{i}-{j}", "synthetic", "all", None) for j in range(50)])
        print(len(index), flush=True)
""")


def test_a_reader_during_growth_and_a_kill_9_lose_nothing_committed(shapes, tmp_path):
    folder = tmp_path / "ix"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(shapes["model"])],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    committed, seen = 0, []
    try:
        while committed < 600 or len(seen) < 4:
            line = writer.stdout.readline()
            assert line, "the writer stopped"
            committed = int(line)
            if committed >= 150 and len(seen) < 4:  # a reader opening while the writer commits
                reader = open_index(folder)
                count = len(reader)
                assert count % 50 == 0 and len(set(reader.rows.tolist())) == count
                assert len(reader.search_vectors(reader.embeddings[:1], 3, "text")[0]) == 3
                seen.append(count)
                time.sleep(0.05)
                assert len(reader) == count and len(reader.embeddings) == count  # still its own version
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    index = open_index(folder)
    assert len(seen) == 4 and len(index) >= max(committed, *seen) and len(index) % 50 == 0
    assert sorted(index.rows.tolist()) == list(range(len(index)))
    assert_bests_current(index)  # recomputed when hubness.npz describes another version
    index.append(unit(np.random.default_rng(3), 50, index.model.dim), synthetic(50, label="after"))
    assert len(open_index(folder)) == len(index)


@pytest.mark.parametrize("kind", ["ivf", "ivf-pq", "ivf-rq", "hnsw"])
def test_ann_kinds_find_what_exact_finds_and_fold_in_new_rows(shapes, tmp_path, kind):
    index = Index.create(tmp_path / "ix", shapes["model"], backend=BackendConfig(kind=kind))
    rng = np.random.default_rng(2)
    dim = index.model.dim
    centers = rng.standard_normal((30, dim))
    index.append(unit(rng, 6000, dim, centers), synthetic(6000))
    index.save()
    assert index.table.vector_index() is not None
    queries = unit(rng, 40, dim, centers)
    approximate = open_index(tmp_path / "ix")
    exact = open_index(tmp_path / "ix")
    exact.use_backend(BackendConfig(kind="exact"))
    found = approximate.search_vectors(queries, 10)
    truth = exact.search_vectors(queries, 10)
    recall = np.mean([len({h.row for h in a} & {h.row for h in b}) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.9, recall
    new = unit(rng, 1000, dim, centers)
    approximate.append(new, synthetic(1000, start=6000, label="new"))
    assert approximate.search_vectors(new[:5], 1)[0][0].id == "item-6000"  # found by the scan of new rows
    approximate.save()  # 1000 new rows > 10 % of the structure: folded in
    assert approximate.table.unindexed_rows() == 0
    assert [h[0].id for h in open_index(tmp_path / "ix").search_vectors(new[:3], 1)] == \
        ["item-6000", "item-6001", "item-6002"]


def legacy_copy(index: Index, folder: Path) -> None:
    """What latentfuse before 0.9 wrote for ``index``: one generation of .npy + .jsonl, index.json format 1."""
    folder.mkdir()
    np.save(folder / "embeddings-000001.npy", index.embeddings)
    records = index.records_of(index.rows.tolist())
    (folder / "items-000001.jsonl").write_text("".join(
        json.dumps({"id": r.id, "source": r.source, "split": r.split, "payload": r.payload, "label": r.label}) + "\n"
        for r in (records[int(row)] for row in index.rows)))
    (folder / "index.json").write_text(json.dumps({
        "format": "latentfuse.index/1", "model": {"path": os.path.relpath(index.model_path, folder),
                                                  "fingerprint": index.model.fingerprint},
        "side": index.side, "count": len(index), "generation": 1, "skipped": [],
        "backend": {"kind": "exact", "nprobe": 16, "m": 32, "ef_search": 128},
        "files": {"embeddings": "embeddings-000001.npy", "items": "items-000001.jsonl"}}))


def test_an_old_format_index_is_refused_by_search_and_converted_by_index(shapes, tmp_path):
    current = open_index(saved_index(shapes, tmp_path / "new").directory)
    legacy_copy(current, tmp_path / "old")
    with pytest.raises(LegacyIndexError, match=r"older latentfuse .*latentfuse index --out .*old"):
        open_index(tmp_path / "old")
    refused = runner.invoke(app, ["search", "--index", str(tmp_path / "old"), "a red circle"])
    assert refused.exit_code != 0 and "convert it once" in str(refused.exception)
    converted = runner.invoke(app, ["index", "--out", str(tmp_path / "old")])
    assert converted.exit_code == 0, converted.output
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [
        ".latentfuse-output.json", "hubness.npz", "index.json", "items.lance"]  # the generation files gone
    old = open_index(tmp_path / "old")
    for text in ("a red circle", "a yellow triangle"):
        assert [(h.id, round(h.score, 5)) for h in old.search(text=text, k=5)] == \
            [(h.id, round(h.score, 5)) for h in current.search(text=text, k=5)]


def test_a_damaged_table_is_named(shapes, tmp_path):
    saved_index(shapes, tmp_path / "ix")
    shutil.rmtree(tmp_path / "ix" / "items.lance" / "_versions")
    with pytest.raises(LatentfuseError, match="cannot open its item table items.lance"):
        open_index(tmp_path / "ix")


def test_penalties_are_stored_with_the_rows_they_describe(shapes, tmp_path):
    index = saved_index(shapes, tmp_path / "ix")
    from latentfuse.hubness import gallery_norm
    from latentfuse.index.table import penalty_column

    whole = gallery_norm(index.model.query_bank["image"], torch.from_numpy(index.embeddings), index.model.hubness.beta)
    stored = index.table.read([penalty_column("image")]).column(0).to_numpy()
    np.testing.assert_allclose(stored, whole.penalty.numpy(), rtol=1e-5, atol=1e-5)
    assert len(COLORS) * len(SHAPES) * VARIANTS == len(index)


def test_the_kind_of_a_built_index_changes_without_new_data(shapes, tmp_path):
    index = Index.create(tmp_path / "ix", shapes["model"])
    rng = np.random.default_rng(4)
    index.append(unit(rng, 5000, index.model.dim), synthetic(5000))
    index.save()
    assert index.table.vector_index() is None  # exact: nothing to train
    result = runner.invoke(app, ["index", "--out", str(tmp_path / "ix"), "--index-kind", "ivf-pq"])
    assert result.exit_code == 0, result.output
    switched = open_index(tmp_path / "ix")
    assert switched.backend_config.kind == "ivf-pq" and switched.table.vector_index() is not None
    assert switched.search_vectors(index.embeddings[:1], 1)[0][0].row == int(index.rows[0])


def test_nprobe_and_refine_set_on_an_index_reach_lancedb(shapes, tmp_path, monkeypatch):
    from latentfuse.index.table import ItemTable

    index = Index.create(tmp_path / "ix", shapes["model"], backend=BackendConfig(kind="ivf-rq"))
    index.append(unit(np.random.default_rng(4), 5000, index.model.dim), synthetic(5000))
    index.save()
    asked = []
    search = ItemTable.ann_search
    monkeypatch.setattr(ItemTable, "ann_search", lambda self, *args: asked.append(args[4:6]) or search(self, *args))
    assert open_index(tmp_path / "ix").search_vectors(index.embeddings[:1], 1)[0][0].row == int(index.rows[0])
    result = runner.invoke(app, ["index", "--out", str(tmp_path / "ix"), "--nprobe", "8", "--refine", "3"])
    assert result.exit_code == 0, result.output
    tuned = open_index(tmp_path / "ix")
    assert (tuned.backend_config.nprobe, tuned.backend_config.refine) == (8, 3)
    assert tuned.search_vectors(index.embeddings[:1], 1)[0][0].row == int(index.rows[0])
    assert asked == [(32, 10), (8, 3)]  # (nprobe, refine × k / limit): ivf-rq's defaults, then the ones set


def test_non_finite_embeddings_are_refused_before_anything_is_written(shapes, tmp_path):
    index = Index.create(tmp_path / "ix", shapes["model"])
    bad = unit(np.random.default_rng(5), 3, index.model.dim)
    bad[1, 0] = np.nan
    with pytest.raises(LatentfuseError, match="embeddings to add hold NaN/inf values; nothing was written"):
        index.append(bad, synthetic(3))
    assert len(index) == 0 and not (tmp_path / "ix" / "items.lance").exists()


def test_rows_that_are_not_unit_length_are_refused_before_anything_is_written(shapes, tmp_path):
    index = Index.create(tmp_path / "ix", shapes["model"])
    bad = unit(np.random.default_rng(5), 3, index.model.dim)
    bad[2] *= 3
    with pytest.raises(LatentfuseError, match="embedding row 2 to add has length 3; an index holds unit-length"):
        index.append(bad, synthetic(3))
    assert len(index) == 0 and not (tmp_path / "ix" / "items.lance").exists()


def test_structures_are_euclidean_and_an_inner_product_one_is_searched_as_built_then_retrained(shapes, tmp_path):
    """LanceDB's k-means on inner product split clusters at millions of rows (backends.METRIC): structures are
    trained in L2; one an earlier version trained on inner product is still searched in its own distance (another
    would scan every row), and the next save retrains it."""
    from lancedb.index import IvfRq

    earlier = BackendConfig(kind="ivf-rq", refine=100)  # what an earlier version saved beside its one-bit structure
    index = Index.create(tmp_path / "ix", shapes["model"], backend=earlier)
    rng = np.random.default_rng(8)
    x = unit(rng, 6000, index.model.dim, rng.standard_normal((30, index.model.dim)))
    index.append(x, synthetic(6000))
    index.save()
    assert index.table.metric() == "l2"
    index.table.table.create_index("vector", config=IvfRq(distance_type="dot", num_partitions=16), replace=True)
    old = open_index(tmp_path / "ix")
    assert old.table.metric() == "dot"
    assert [h[0].row for h in old.search_vectors(x[:5], 1)] == [0, 1, 2, 3, 4]
    old.append(x[:1], synthetic(1, start=6000))  # too few to fold in, yet the save retrains: its cells are stale
    old.save()
    assert old.table.metric() == "l2" and open_index(tmp_path / "ix").table.metric() == "l2"
    assert [h[0].row for h in open_index(tmp_path / "ix").search_vectors(x[5:8], 1)] == [5, 6, 7]


@pytest.mark.parametrize("kind", ["exact", "ivf-pq"])
def test_a_filter_keeps_rows_out_of_the_answer_not_out_of_qb_norm(shapes, tmp_path, kind):
    """Under DIS a query is normalised when its raw top-1 in the whole index is a hub: a filtered search gives each
    row it keeps the score (and so the place) the unfiltered search gives it, also for queries whose top-1 the
    filter removes and whose top-1 among the kept rows has the other hub status."""
    index = open_index(saved_index(shapes, tmp_path / "ix").directory)
    index.hubness = "dis"
    index.use_backend(BackendConfig(kind=kind))
    hubs = set(index.bank_bests()["text"].best_row.tolist())
    exercised = 0
    for color in COLORS:
        for shape in SHAPES:
            everything = index.search(text=f"a {color} {shape}", k=len(index))
            for kept in COLORS:
                where = f"id LIKE '{kept}/%'"
                filtered = index.search(text=f"a {color} {shape}", k=len(index), where=where)
                expected = [(h.id, h.score) for h in everything if h.id.startswith(f"{kept}/")]
                assert [h.id for h in filtered] == [i for i, _ in expected], (color, shape, kept)
                np.testing.assert_allclose([h.score for h in filtered], [s for _, s in expected], rtol=1e-5, atol=1e-5)
                top, top_kept = max(everything, key=lambda h: h.cosine), max(filtered, key=lambda h: h.cosine)
                exercised += top.row != top_kept.row and (top.row in hubs) != (top_kept.row in hubs)
    assert exercised > 0  # some query's decision would differ if it were made on the kept rows alone


def test_saving_a_large_exact_index_advises_an_ann_kind(shapes, tmp_path, monkeypatch, caplog):
    import logging

    from latentfuse.index import collection

    monkeypatch.setattr(collection, "EXACT_ROWS_ADVISED", 100)
    index = Index.create(tmp_path / "ix", shapes["model"])
    index.append(unit(np.random.default_rng(6), 100, index.model.dim), synthetic(100))
    with caplog.at_level(logging.WARNING, logger="latentfuse"):
        index.save()
        assert caplog.text == ""  # not past the advice
        index.append(unit(np.random.default_rng(7), 1, index.model.dim), synthetic(1, start=100))
        index.save()
    assert "an exact index of 101 items holds every embedding in memory" in caplog.text
    assert "--index-kind ivf-rq" in caplog.text


def test_ivf_rq_has_four_bits_a_dimension_and_refine_ten_unless_set():
    from latentfuse.errors import ConfigError
    from latentfuse.index.backends import refine_of, vector_index

    assert vector_index(BackendConfig(kind="ivf-rq"), 100_000, 512).num_bits == 4  # what the bench measures
    assert vector_index(BackendConfig(kind="ivf-rq"), 100_000, 64).num_bits == 4
    assert vector_index(BackendConfig(kind="ivf-rq", rq_bits=2), 100_000, 512).num_bits == 2
    with pytest.raises(ConfigError, match="rq_bits: expected a number"):
        BackendConfig(kind="ivf-rq", rq_bits=9)
    assert [refine_of(BackendConfig(kind=kind)) for kind in ("ivf-rq", "ivf-pq", "hnsw")] == [10, 100, 100]
    assert refine_of(BackendConfig(kind="ivf-rq", refine=3)) == 3
    assert refine_of(BackendConfig(kind="ivf-rq", rq_bits=1)) == 100  # one bit ranks far from exact


def test_cells_are_the_square_root_of_the_rows_unless_set_and_keep_enough_rows_each():
    from latentfuse.index.backends import MAX_CELL_VALUES, MIN_ROWS_PER_PARTITION, vector_index

    assert vector_index(BackendConfig(kind="ivf-rq"), 1_000_000, 512).num_partitions == 1000
    assert vector_index(BackendConfig(kind="ivf-rq"), 3_000_000, 512).num_partitions == 1732
    assert vector_index(BackendConfig(kind="ivf-rq"), 10_000_000, 512).num_partitions == MAX_CELL_VALUES // 512 == 1953
    assert vector_index(BackendConfig(kind="ivf-rq"), 10_000_000, 64).num_partitions == 3162  # 64-d: √N still
    assert vector_index(BackendConfig(kind="ivf-rq", cells=3162), 10_000_000, 512).num_partitions == 3162
    assert vector_index(BackendConfig(kind="ivf-pq", cells=3000), 1_000_000, 512).num_partitions == 3000
    assert vector_index(BackendConfig(kind="ivf", cells=4000), 100_000, 512).num_partitions == \
        100_000 // MIN_ROWS_PER_PARTITION


TRAIN = textwrap.dedent("""
    import os, sys
    import numpy as np
    from latentfuse.index import BackendConfig, Index
    from latentfuse.index.collection import Record
    index = Index.create(sys.argv[1], sys.argv[2], backend=BackendConfig(kind="ivf"))
    x = np.repeat(np.eye(index.model.dim, dtype=np.float32)[:3], 1700, axis=0)  # 3 directions: most cells empty
    index.append(x, [Record(str(i), "synthetic", "all", None) for i in range(len(x))])
    index.save()
    print(os.environ["LANCE_USE_HNSW_SPEEDUP_INDEXING"])
""")


@pytest.mark.parametrize("user", [{}, {"LANCEDB_LOG": "warn", "LANCE_USE_HNSW_SPEEDUP_INDEXING": "enabled"}])
def test_lance_is_told_to_assign_cells_exactly_and_keep_its_warnings_unless_the_user_says(shapes, tmp_path, user):
    from latentfuse.index.table import LANCE_ENVIRONMENT

    env = {name: value for name, value in os.environ.items() if name not in LANCE_ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "ix"), str(shapes["model"])],
                          capture_output=True, text=True, env={**env, **user, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [user.get("LANCE_USE_HNSW_SPEEDUP_INDEXING", "disabled")]  # a user's choice is kept
    assert ("KMeans: more than 10% of clusters are empty" in done.stderr) == bool(user), done.stderr
