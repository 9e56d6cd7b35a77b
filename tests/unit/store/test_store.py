"""Feature store: cache hits do no encoder work, SIGKILL mid-run resumes without loss or duplication,
bad items fail loudly or are skipped and recorded."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.fakes import FakeTextEncoder, SyntheticSource, committed_shards, encoder_calls, fake_embed
from helpers.cli import TESTS
from latentfuse.errors import DataError
from latentfuse.config import StoreConfig
from latentfuse.store import get_features


def _extract(source, store, side="text_a", batch_size=64, shard_size=2048, **kw):
    return get_features(source, source.load("train"), side, FakeTextEncoder(),
                        StoreConfig(str(store), batch_size, shard_size), progress=False, **kw)


def test_features_match_encoder_and_are_float16(tmp_path):
    feats = _extract(SyntheticSource(10), tmp_path, batch_size=4, shard_size=3)
    assert feats.ids == [f"train-a{i}" for i in range(10)]
    assert feats.array.dtype == np.float16 and feats.array.shape == (10, 16)
    expected = fake_embed("train a 7").astype(np.float16)
    np.testing.assert_array_equal(feats.array[7], expected)
    assert len(committed_shards(tmp_path)) == 4  # 3 + 3 + 3 + 1


def test_second_extract_is_a_cache_hit(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    first = _extract(SyntheticSource(50), tmp_path / "store", batch_size=8, shard_size=16)
    assert sum(encoder_calls(log)) == 50
    second = _extract(SyntheticSource(50), tmp_path / "store", batch_size=8, shard_size=16)
    assert sum(encoder_calls(log)) == 50, "cached features must not be re-encoded"
    np.testing.assert_array_equal(first.array, second.array)
    # rows are filed by content: a bigger dataset encodes only its new item
    _extract(SyntheticSource(51), tmp_path / "store", batch_size=8, shard_size=16)
    assert sum(encoder_calls(log)) == 51


def test_single_shard_is_memory_mapped(tmp_path):
    feats = _extract(SyntheticSource(10), tmp_path, shard_size=64)
    assert isinstance(feats.array, np.memmap)


def test_bad_item_error_names_item_and_row(tmp_path):
    with pytest.raises(DataError, match=r"BAD train a 3.*synthetic:5.*--skip-bad"):
        _extract(SyntheticSource(10, bad=(3,)), tmp_path)


def test_skip_bad_records_skipped_ids_in_manifest(tmp_path):
    feats = _extract(SyntheticSource(10, bad=(3, 8)), tmp_path, skip_bad=True, batch_size=4, shard_size=5)
    assert "train-a3" not in feats.ids and "train-a8" not in feats.ids and len(feats.ids) == 8
    skipped = {s["id"]: s["reason"] for s in feats.manifest["skipped"]}
    assert skipped == {"train-a3": "unreadable test item", "train-a8": "unreadable test item"}
    np.testing.assert_array_equal(feats.array[feats.ids.index("train-a4")], fake_embed("train a 4").astype(np.float16))


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from helpers.fakes import FakeTextEncoder, SyntheticSource
from latentfuse.config import StoreConfig
from latentfuse.store import get_features
src = SyntheticSource(400)
get_features(src, src.load("train"), "text_a", FakeTextEncoder(), StoreConfig({store!r}, 10, 40),
             progress=False)
"""


def test_sigkill_mid_extract_then_resume_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    store, log = tmp_path / "store", tmp_path / "calls.log"
    script = KILL_SCRIPT.format(tests=str(TESTS), store=str(store))
    env = dict(os.environ, FAKE_ENCODER_LOG=str(log), FAKE_ENCODER_DELAY="0.03")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(committed_shards(store)) < 3:  # some, but not all, shards committed
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = committed_shards(store)
    assert 3 <= len(committed) < 10
    calls_before = sum(encoder_calls(log))
    assert calls_before >= 40 * len(committed)
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))

    feats = _extract(SyntheticSource(400), store, batch_size=10, shard_size=40)
    assert feats.ids == [f"train-a{i}" for i in range(400)]  # nothing lost, nothing duplicated
    np.testing.assert_array_equal(feats.array[399], fake_embed("train a 399").astype(np.float16))
    redone = sum(encoder_calls(log)) - calls_before
    assert redone == 400 - 40 * len(committed), "finished shards must not be re-encoded"
    leftovers = [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
