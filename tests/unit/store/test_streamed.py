"""Training beyond RAM: rows gathered from the store's shards equal the in-memory rows, the chunked shuffle reads
the disk forward, and a streamed run trains exactly as the in-memory run with the same seed and order."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from latentfuse.config import load_yaml, RunConfig
from latentfuse.config import StoreConfig
from latentfuse.pipeline import run, should_stream
from latentfuse.store import get_features
from latentfuse.store.streamed import StreamedRows, chunked_order
from helpers import fakes
from helpers.tables import cipher_table, write_config


def test_streamed_rows_are_the_stored_rows_in_any_order(tmp_path):
    from latentfuse.data import build_source

    source = build_source(f"pairs:{cipher_table(tmp_path / 'p.tsv', 300, 10, 10)}")
    data = source.load("train")
    store = StoreConfig(root=str(tmp_path / "store"), shard_size=64)  # five shards
    encoder = fakes.FakeTextEncoder()
    held = get_features(source, data, "text_a", encoder, store, progress=False)
    streamed = get_features(source, data, "text_a", encoder, store, progress=False, stream=True)
    assert isinstance(streamed.array, StreamedRows) and streamed.ids == held.ids
    assert len(np.unique(streamed.array.shard)) == 5 and streamed.array.shape == held.array.shape
    rows = np.random.default_rng(0).integers(0, len(held.ids), 500)  # random order, repeats, every shard
    assert np.array_equal(streamed.array[torch.from_numpy(rows)].numpy(), held.array[rows].astype(np.float32))
    assert np.array_equal(streamed.array[10:20].numpy(), held.array[10:20].astype(np.float32))


def test_an_ensembles_streamed_rows_are_its_joined_rows(tmp_path):
    from latentfuse.data import build_source
    from latentfuse.encoders.ensemble import Ensemble

    source = build_source(f"pairs:{cipher_table(tmp_path / 'p.tsv', 300, 10, 10)}")
    data = source.load("train")
    store = StoreConfig(root=str(tmp_path / "store"), shard_size=64)
    encoder = Ensemble([fakes.FakeTextEncoder("16"), fakes.FakeTextEncoder("8")])
    held = get_features(source, data, "text_a", encoder, store, progress=False)
    streamed = get_features(source, data, "text_a", encoder, store, progress=False, stream=True)
    assert isinstance(streamed.array, StreamedRows) and streamed.ids == held.ids
    assert streamed.array.shape == held.array.shape == (len(held.ids), 24)
    rows = np.random.default_rng(1).integers(0, len(held.ids), 400)
    assert np.array_equal(streamed.array[torch.from_numpy(rows)].numpy(), held.array[rows].astype(np.float32))


def test_the_chunked_order_is_a_seeded_permutation_of_contiguous_chunks():
    n, chunk, window = 10_000, 100, 4
    order = chunked_order(n, torch.Generator().manual_seed(3), chunk, window)
    assert sorted(order.tolist()) == list(range(n))
    assert torch.equal(order, chunked_order(n, torch.Generator().manual_seed(3), chunk, window))
    assert not torch.equal(order, chunked_order(n, torch.Generator().manual_seed(4), chunk, window))
    for start in range(0, n, chunk * window):  # each stretch of window·chunk positions covers `window` chunks
        chunks = set((order[start:start + chunk * window] // chunk).tolist())
        assert len(chunks) == window
    assert len(set((order[:chunk * window] // chunk).tolist())) > 1  # ...mixed, not one chunk after another


def trained(tmp_path, name: str, encoders: dict[str, str] | None = None, **train) -> dict[str, np.ndarray]:
    table = tmp_path / "pairs.tsv"
    if not table.exists():
        cipher_table(table, 600, 100, 60)
    config = load_yaml(write_config(tmp_path, table, epochs=2, **train), RunConfig)
    config.encoders = encoders or config.encoders
    config.store.shard_size = 128
    config.out = str(tmp_path / name)
    run(config, progress=False)
    return load_file(str(tmp_path / name / "model.safetensors"))


def test_a_streamed_run_trains_exactly_as_the_in_memory_run_with_the_same_order(tmp_path, caplog, monkeypatch):
    from latentfuse.store import streamed as module

    monkeypatch.setattr(module, "CHUNK", 64)  # 600 pairs: ten chunks, two windows of 4 (the real ones hold 65k)
    monkeypatch.setattr(module, "WINDOW", 4)
    in_memory = trained(tmp_path, "memory", stream="off", shuffle="chunked")
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        streamed = trained(tmp_path, "streamed", stream="on")  # auto shuffle: chunked, as streaming reads
    assert in_memory.keys() == streamed.keys()
    for name in in_memory:
        assert np.array_equal(in_memory[name], streamed[name]), name
    assert "baseline procrustes skipped" in caplog.text
    shuffled = trained(tmp_path, "full", stream="off")  # the default order differs: the same check can fail
    assert any(not np.array_equal(in_memory[n], shuffled[n]) for n in in_memory)
    ensemble = {"text_a": "fake-text:64+fake-text:32", "text_b": "fake-text:64"}  # an ensemble side streams too
    in_memory = trained(tmp_path, "memory-ensemble", ensemble, stream="off", shuffle="chunked")
    streamed = trained(tmp_path, "streamed-ensemble", ensemble, stream="on")
    assert all(np.array_equal(in_memory[name], streamed[name]) for name in in_memory)


def test_auto_streams_when_the_features_exceed_half_the_available_memory(monkeypatch, tmp_path, caplog):
    from latentfuse.data import build_source
    from latentfuse.store import streamed

    data = build_source(f"pairs:{cipher_table(tmp_path / 'p.tsv', 100, 10, 10)}").load("train")
    encoders = {"text_a": fakes.FakeTextEncoder(), "text_b": fakes.FakeTextEncoder()}
    need = 2 * 100 * encoders["text_a"].dim * 4
    monkeypatch.setattr("latentfuse.pipeline.available_memory", lambda: 4 * need)
    assert not should_stream("auto", data, encoders, {})
    monkeypatch.setattr("latentfuse.pipeline.available_memory", lambda: need)
    with caplog.at_level(logging.INFO, logger="latentfuse"):
        assert should_stream("auto", data, encoders, {})
    assert "exceed half of the available memory" in caplog.text
    assert should_stream("on", data, encoders, {}) and not should_stream("off", data, encoders, {})
    assert streamed.available_memory() > 0


def test_a_closed_form_method_refuses_to_stream(tmp_path):
    from latentfuse.errors import ConfigError

    table = cipher_table(tmp_path / "p.tsv", 100, 20, 20)
    config = load_yaml(write_config(tmp_path, table, stream="on"), RunConfig)
    config.method.name, config.method.options = "procrustes", {}
    with pytest.raises(ConfigError, match="fits in closed form on features held in memory.*train.stream off"):
        run(config, progress=False)


def test_streaming_is_no_part_of_a_runs_identity_but_a_chosen_order_is():
    """A run may be resumed streamed or in memory (as on another device); a shuffle chosen explicitly is part of
    the run, and a run saved before these settings existed is the same run at their defaults."""
    import dataclasses

    from latentfuse.config import run_identity

    base = RunConfig()

    def with_train(**changes):
        return dataclasses.replace(base, train=dataclasses.replace(base.train, **changes))

    assert run_identity(with_train(stream="on")) == run_identity(with_train(stream="off")) == run_identity(base)
    assert "stream" not in run_identity(base)["train"] and "shuffle" not in run_identity(base)["train"]
    assert run_identity(with_train(shuffle="chunked")) != run_identity(base)
