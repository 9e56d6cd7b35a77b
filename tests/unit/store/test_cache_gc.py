"""`latentfuse cache` counts what the content-addressed store holds and who read it; `cache gc` removes exactly
the rows no data's latest read used (an edited caption's old row), rewrites shards that hold both kinds, and
removes the older per-dataset layout. Also: rows are shared across sources and an old layout is announced."""
from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from helpers.fakes import committed_shards, encoder_calls, fake_embed
from latentfuse.cli import app
from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.store import get_features, get_tokens
from latentfuse.store import maintenance


def table(path, texts):
    path.write_text("text_a\ttext_b\n" + "".join(f"{t}\tother {i}\n" for i, t in enumerate(texts)))
    return path


def features(path, store, side="text_a"):
    source = build_source(f"pairs:{path}")
    return get_features(source, source.load("all"), side, build_encoder_8(), StoreConfig(str(store), 4, 4),
                        progress=False)


def build_encoder_8():
    from latentfuse.encoders import build_encoder

    return build_encoder("fake-text:8")


def test_an_edited_caption_is_the_only_row_gc_removes(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    texts = [f"caption number {i}" for i in range(10)]
    path = table(tmp_path / "pairs.tsv", texts)
    store = tmp_path / "store"
    features(path, store)
    assert sum(encoder_calls(log)) == 10
    texts[5] = "an edited caption"
    table(path, texts)
    after = features(path, store)
    assert sum(encoder_calls(log)) == 11  # only the edited caption was encoded
    stats = maintenance.stats(store)
    (shelf,) = stats.shelves
    assert (shelf.items, shelf.referenced) == (11, 10) and len(stats.usages) == 1
    dry = maintenance.collect(store, dry_run=True)
    assert (dry.rows_removed, dry.shards_rewritten, dry.shards_removed) == (1, 1, 0)
    assert maintenance.stats(store).shelves[0].items == 11  # a dry run removes nothing
    result = CliRunner().invoke(app, ["cache", "gc", "--store", str(store)])
    assert result.exit_code == 0 and "removed 1 unreferenced rows (0 shards whole, 1 rewritten)" in result.output
    (shelf,) = maintenance.stats(store).shelves
    assert (shelf.items, shelf.referenced) == (10, 10)
    again = features(path, store)
    assert sum(encoder_calls(log)) == 11  # nothing referenced was lost
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(after.array))
    np.testing.assert_array_equal(again.array[5], fake_embed("an edited caption", 8).astype(np.float16))


def test_the_same_text_in_another_source_is_read_not_encoded(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    features(table(tmp_path / "a.tsv", ["one", "two", "three"]), tmp_path / "store")
    other = features(table(tmp_path / "b.tsv", ["three", "four", "one"]), tmp_path / "store")
    assert sum(encoder_calls(log)) == 4 and other.ids == ["row1", "row2", "row3"]
    np.testing.assert_array_equal(other.array[2], fake_embed("one", 8).astype(np.float16))


def test_gc_removes_orphans_of_killed_runs_and_the_older_layout(tmp_path, caplog):
    store = tmp_path / "store"
    old = store / "flickr8k-0123456789ab" / "train" / "image" / "enc-abc"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    (old / "shard-00000.npy").write_bytes(b"x" * 1000)
    with caplog.at_level(logging.WARNING):
        features(table(tmp_path / "pairs.tsv", ["a b", "c d"]), store)
    assert "older per-dataset layout" in caplog.text and "latentfuse cache gc" in caplog.text
    (shelf_dir,) = {p.parent for p in committed_shards(store)}
    orphan = shelf_dir / "shard-deadbeef.npy"  # a killed run's values, never committed
    orphan.write_bytes(b"y" * 100)
    stale = time.time() - 2 * maintenance.ORPHAN_AGE_S
    os.utime(orphan, (stale, stale))
    fresh = shelf_dir / ".shard-feed.npy.abc.tmp"  # a running extraction's file: kept
    fresh.write_bytes(b"z")
    shown = CliRunner().invoke(app, ["cache", "--store", str(store)]).output
    assert "in folders of the older per-dataset layout" in shown and "fake-text_8-" in shown
    done = maintenance.collect(store)
    assert done.old_folders == 1 and not (store / "flickr8k-0123456789ab").exists()
    assert not orphan.exists() and fresh.exists() and len(committed_shards(store)) == 1


def test_gc_keeps_token_rows_in_use_and_rewrites_the_rest(tmp_path):
    from helpers.fakes import FakeTextEncoder

    path = table(tmp_path / "pairs.tsv", ["a b c", "d e", "f"])
    store = StoreConfig(str(tmp_path / "store"), 4, 8)
    source = build_source(f"pairs:{path}")
    get_tokens(source, source.load("all"), "text_a", FakeTextEncoder("8"), ["words"], store, progress=False)
    table(path, ["a b c", "d e", "g h"])
    source = build_source(f"pairs:{path}")
    before = get_tokens(source, source.load("all"), "text_a", FakeTextEncoder("8"), ["words"], store,
                        progress=False)["words"]
    done = maintenance.collect(tmp_path / "store")
    assert done.rows_removed == 1
    after = get_tokens(source, source.load("all"), "text_a", FakeTextEncoder("8"), ["words"], store,
                       progress=False)["words"]
    for row in range(3):
        np.testing.assert_array_equal(after.item(row), before.item(row))


def test_a_damaged_shard_is_one_line_saying_how_to_recover(tmp_path):
    """A committed shard whose keys or values were damaged: a StoreError naming it and the way out, for pooled
    features and token taps alike (was a numpy ValueError)."""
    from helpers.fakes import FakeTextEncoder
    from latentfuse.store.feature_store import StoreError

    path = table(tmp_path / "pairs.tsv", ["a b", "c d", "e"])
    features(path, tmp_path / "store")
    (keys,) = committed_shards(tmp_path / "store")
    keys.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(StoreError, match=r"damaged shard .*delete its files, or run `latentfuse cache gc`"):
        features(path, tmp_path / "store")
    source = build_source(f"pairs:{path}")
    store = StoreConfig(str(tmp_path / "taps"), 4, 8)
    get_tokens(source, source.load("all"), "text_a", FakeTextEncoder("8"), ["words"], store, progress=False)
    (values,) = [p for p in (tmp_path / "taps").rglob("shard-*.npy") if p.name.count(".") == 1]
    values.write_bytes(b"")
    with pytest.raises(StoreError, match=r"damaged or missing .*`latentfuse cache gc`"):
        get_tokens(source, source.load("all"), "text_a", FakeTextEncoder("8"), ["words"], store, progress=False)
