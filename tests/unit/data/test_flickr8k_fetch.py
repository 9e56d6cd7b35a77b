"""`flickr8k` without a folder: a local copy is found, else the Hugging Face dataset is fetched once through
`datasets` into the cache in the latentfuse layout (tested on a tiny dataset of the Hub's shape written
locally), and offline without a copy is one line saying where to put one."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentfuse.data import build_source
from latentfuse.errors import DataError

SPLITS = {"train": 4, "validation": 2, "test": 2}


def hub_dataset(folder):
    """The Hub dataset's shape: an image column and caption_0 … caption_4, splits train / validation / test."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(),
                                  **{f"caption_{k}": datasets.Value("string") for k in range(5)}})
    for split, n in SPLITS.items():
        images = [Image.fromarray(np.full((20, 24, 3), 40 * i + 10, np.uint8)) for i in range(n)]
        columns = {f"caption_{k}": [f"{split} photo {i} caption {k}" for i in range(n)] for k in range(5)}
        table = datasets.Dataset.from_dict({"image": images, **columns}, features=features)
        table.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder with no shared/ beside it, and a cache of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTFUSE_CACHE", str(tmp_path / "cache" / "features"))
    monkeypatch.delenv("LATENTFUSE_FLICKR8K", raising=False)
    return tmp_path


def test_fetched_once_into_the_cache_then_read_from_there(elsewhere, monkeypatch):
    hub = hub_dataset(elsewhere / "hub")
    monkeypatch.setenv("LATENTFUSE_FLICKR8K_HUB", str(hub))
    source = build_source("flickr8k")
    assert source.root == elsewhere / "cache" / "datasets" / "flickr8k"
    assert source.splits() == ["train", "val", "test"]
    test = source.load("test")
    assert len(test.items["image"]) == 2 and len(test.items["text"]) == 10
    assert [item.payload for item in test.items["text"]][:2] == ["test photo 0 caption 0", "test photo 0 caption 1"]
    assert Image.open(test.items["image"][1].payload).getpixel((0, 0)) == pytest.approx((50, 50, 50), abs=2)
    monkeypatch.setenv("LATENTFUSE_FLICKR8K_HUB", str(elsewhere / "gone"))  # the copy is read, nothing fetched
    assert build_source("flickr8k").root == source.root
    assert not list((elsewhere / "cache" / "datasets").glob("*.partial"))


def test_offline_without_a_copy_says_where_to_put_one(elsewhere, monkeypatch):
    monkeypatch.setenv("LATENTFUSE_FLICKR8K_HUB", "someone/flickr8k")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LATENTFUSE_HUB_OFFLINE_BY_DEFAULT", raising=False)
    with pytest.raises(DataError) as caught:
        build_source("flickr8k")
    message = str(caught.value)
    assert "no local copy" in message and "offline" in message
    assert f"put a copy in {elsewhere / 'cache' / 'datasets' / 'flickr8k'} or give flickr8k:DIR" in message


def test_a_local_copy_named_by_the_environment_wins(elsewhere, monkeypatch, flickr8k_dir):
    monkeypatch.setenv("LATENTFUSE_FLICKR8K", str(flickr8k_dir))
    assert build_source("flickr8k").root == flickr8k_dir.resolve()
