"""Token features in the feature store: ragged round trip, per-batch padding with a mask, cache hits that do
no encoder work, resume after SIGKILL without loss or duplication, --skip-bad records, a real image tap."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.fakes import FakeTextEncoder, SyntheticSource, committed_shards, encoder_calls, vector
from helpers.cli import TESTS
from latentfuse.config import StoreConfig
from latentfuse.data import Item, Side, Source, SplitData
from latentfuse.errors import DataError
from latentfuse.store import get_tokens


class RaggedSource(Source):
    """Texts of 1–7 words, so token counts differ from item to item."""

    name = "ragged"
    sides = (Side("text_a", "text"), Side("text_b", "text"))

    def __init__(self, n: int = 50, bad: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.n, self.bad = n, bad

    @property
    def spec(self) -> str:
        return f"ragged:{self.n}"

    @property
    def fingerprint(self) -> str:
        return f"ragged-{self.n}-{self.bad}"

    def splits(self) -> list[str]:
        return ["train"]

    def load(self, split: str) -> SplitData:
        words = [" ".join(f"w{i}x{j}" for j in range(1 + i % 7)) for i in range(self.n)]
        a = [Item(f"a{i}", ("BAD " if i in self.bad else "") + words[i]) for i in range(self.n)]
        b = [Item(f"b{i}", words[i]) for i in range(self.n)]
        return SplitData(split, self.sides, {"text_a": a, "text_b": b}, [(x.id, y.id) for x, y in zip(a, b)])


def tokens_of(source, store, side="text_a", batch_size=8, shard_size=16, **kw):
    return get_tokens(source, source.load("train"), side, FakeTextEncoder("8"), ["words"],
                      StoreConfig(str(store), batch_size, shard_size), progress=False, **kw)["words"]


def test_ragged_round_trip_and_padded_batches_with_masks(tmp_path):
    source = RaggedSource(50)
    feats = tokens_of(source, tmp_path / "store")
    data = source.load("train")
    assert feats.ids == [item.id for item in data.items["text_a"]] and len(feats.shards) == 4
    assert list(feats.lengths()) == [1 + i % 7 for i in range(50)]  # true lengths, no padding stored
    for row in (0, 6, 17, 49):
        expected = np.stack([vector(w, 8) for w in data.items["text_a"][row].payload.split()])
        np.testing.assert_allclose(feats.item(row), expected, atol=2e-3)  # float16
        assert feats.item(row).dtype == np.float16
    x, mask = feats.take([6, 0, 17])
    assert x.shape == (3, 7, 8) and mask.sum(1).tolist() == [7, 1, 4]
    assert not x[1, 1:].any()  # padding is zeros, and only where the mask is False
    stored = sum(p.stat().st_size for p in (tmp_path / "store").rglob("shard-*.npy"))
    assert feats.bytes_per_item() <= stored / 50


def test_a_second_run_is_a_cache_hit(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    tokens_of(RaggedSource(40), tmp_path / "store")
    first = sum(encoder_calls(log))
    again = tokens_of(RaggedSource(40), tmp_path / "store")
    assert sum(encoder_calls(log)) == first == 40 and len(again) == 40


def test_skip_bad_records_and_a_strict_run_still_fails(tmp_path):
    with pytest.raises(DataError, match="unreadable test item; pass --skip-bad"):
        tokens_of(RaggedSource(30, bad=(4,)), tmp_path / "store")
    feats = tokens_of(RaggedSource(30, bad=(4,)), tmp_path / "store", skip_bad=True)
    assert "a4" not in feats.ids and len(feats) == 29
    assert [s["id"] for s in feats.manifest["skipped"]] == ["a4"]
    with pytest.raises(DataError, match="a4: .*earlier --skip-bad run skipped it"):
        tokens_of(RaggedSource(30, bad=(4,)), tmp_path / "store")


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from helpers.fakes import FakeTextEncoder, SyntheticSource
from latentfuse.config import StoreConfig
from latentfuse.store import get_tokens
source = SyntheticSource(400)
get_tokens(source, source.load("train"), "text_a", FakeTextEncoder("8"), ["words"],
           StoreConfig({store!r}, 10, 40), progress=False)
"""


def test_sigkill_mid_extract_then_resume_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    store, log = tmp_path / "store", tmp_path / "calls.log"
    env = dict(os.environ, FAKE_ENCODER_LOG=str(log), FAKE_ENCODER_DELAY="0.03")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(tests=str(TESTS),
                                                                      store=str(store))], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(committed_shards(store, "tap-words")) < 3:  # some, not all, committed
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = committed_shards(store, "tap-words")
    assert 3 <= len(committed) < 10
    calls_before = sum(encoder_calls(log))
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    source = SyntheticSource(400)
    feats = get_tokens(source, source.load("train"), "text_a", FakeTextEncoder("8"), ["words"],
                       StoreConfig(str(store), 10, 40), progress=False)["words"]
    assert feats.ids == [f"train-a{i}" for i in range(400)]  # nothing lost, nothing duplicated
    np.testing.assert_allclose(feats.item(399), np.stack([vector(w, 8) for w in "train a 399".split()]), atol=2e-3)
    assert sum(encoder_calls(log)) - calls_before == 400 - 40 * len(committed)
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_real_image_taps_through_the_store(shapes, tmp_path):
    from latentfuse.data import build_source
    from latentfuse.encoders import build_encoder

    source = build_source(f"images:{shapes['images']}")
    data = source.load("all")
    taps = get_tokens(source, data, "image", build_encoder("efficientnet-lite0"), ["stride16", "head"],
                      StoreConfig(str(tmp_path / "store")), progress=False)
    assert set(taps) == {"stride16", "head"}
    assert taps["stride16"].take([0, 1])[0].shape == (2, 49, 112)
    assert set(taps["head"].lengths()) == {49} and len(taps["head"]) == len(data.items["image"])
    assert taps["head"].bytes_per_item() == pytest.approx(49 * 1280 * 2 + 8, rel=0.01)


def test_extract_layers_caches_taps_and_reports_their_storage(tmp_path):
    from click.testing import CliRunner

    from latentfuse.cli import app

    table = tmp_path / "pairs.tsv"
    table.write_text("text_a\ttext_b\n" + "".join(f"w{i} x{i} y\tz{i}\n" for i in range(12)))
    args = ["extract", "--data", f"pairs:{table}", "-e", "text_a=fake-text:8", "-e", "text_b=fake-text:8",
            "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(app, args + ["--layers", "text_a=words"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "all/text_a tap words: 12 items × 3 tokens × 8 channels, " in result.output
    assert len(committed_shards(tmp_path / "store", "tap-words")) == 1
    both = CliRunner().invoke(app, args + ["--layers", "words"])  # a bare tap goes to every side that has it
    assert both.exit_code == 0 and "all/text_b tap words: 12 items × 1 tokens" in both.output
    typo = CliRunner().invoke(app, args + ["--layers", "word"])
    assert "no encoder has a tap 'word'; taps by side: text_a (fake-text:8): words" in str(typo.exception)


def test_info_lists_each_encoders_taps_with_shapes():
    from click.testing import CliRunner

    from latentfuse.cli import app

    out = CliRunner().invoke(app, ["info"]).output
    assert "efficientnet-lite0     stride16   (49, 112)" in out and "minilm-l6              layer6     (T, 384)" in out


def test_a_subset_reads_its_rows_from_the_whole_splits_taps(tmp_path, monkeypatch):
    """`data.limit` trials on token methods: the first N items come from the full split's cached taps (the same
    content), with no encoder work and no second copy in the store."""
    source = RaggedSource(50)
    full = source.load("train")
    parent = tokens_of(source, tmp_path / "store")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ENCODER_LOG", str(log))
    head = full.head(10)
    got = get_tokens(source, head, "text_a", FakeTextEncoder("8"), ["words"], StoreConfig(str(tmp_path / "store"), 8, 16),
                     progress=False)["words"]
    assert encoder_calls(log) == []
    assert got.ids == [f"a{i}" for i in range(10)]
    for row in range(10):
        np.testing.assert_array_equal(got.item(row), parent.item(row))
    assert len(committed_shards(tmp_path / "store")) == len(committed_shards(tmp_path / "store", "tap-words")) == 4
