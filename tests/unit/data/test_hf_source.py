"""hf: — Hugging Face datasets written here (save_to_disk, the Hub's parquet layout, load_dataset on a local
folder) against a pairs: table of the same photos: the same items, bit-identical features, one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentfuse.config import StoreConfig
from latentfuse.data import build_source
from latentfuse.data.hf import named_dataset
from latentfuse.encoders import build_encoder
from latentfuse.errors import DataError
from latentfuse.store import get_features

from test_webdataset import photos

datasets = pytest.importorskip("datasets")  # the [data] extra; `make test` installs it


def image_dataset(files: list[Path], captions: list, image: str = "bytes"):
    """A datasets.Dataset with an Image column of encoded bytes (or a string column of paths) and captions."""
    cells = [{"bytes": p.read_bytes(), "path": None} for p in files] if image == "bytes" else [str(p) for p in files]
    text_type = datasets.Sequence(datasets.Value("string")) if isinstance(captions[0], list) else datasets.Value("string")
    image_type = datasets.Image() if image == "bytes" else datasets.Value("string")
    features = datasets.Features({"image": image_type, "caption": text_type})
    return datasets.Dataset.from_dict({"image": cells, "caption": captions}, features=features)


@pytest.fixture
def table_and_photos(tmp_path: Path) -> tuple[Path, list[Path], list[str]]:
    files = photos(tmp_path / "photos", 6)
    captions = [f"caption number {i}" for i in range(6)]
    (tmp_path / "pairs.csv").write_text("image,text\n" + "".join(f"photos/{p.name},{c}\n"
                                                                  for p, c in zip(files, captions)))
    return tmp_path / "pairs.csv", files, captions


def features(spec: str, split: str, root: Path) -> np.ndarray:
    source = build_source(spec)
    return get_features(source, source.load(split), "image", build_encoder("pixels:16"),
                        StoreConfig(root=str(root)), progress=False).array


def test_a_saved_dataset_gives_the_tables_items_and_bit_identical_features(table_and_photos, tmp_path):
    table, files, captions = table_and_photos
    image_dataset(files, captions).save_to_disk(str(tmp_path / "saved"))
    source = build_source(f"hf:{tmp_path / 'saved'}")
    assert source.splits() == ["all"]
    data = source.load("all")
    assert [i.id for i in data.items["image"]] == [str(i) for i in range(6)]
    assert [i.payload for i in data.items["text"]] == captions and data.pairs == [(str(i), str(i)) for i in range(6)]
    assert data.items["image"][2].payload.read_bytes() == files[2].read_bytes()
    assert np.array_equal(features(f"hf:{tmp_path / 'saved'}", "all", tmp_path / "a"),
                          features(f"pairs:{table}", "all", tmp_path / "b"))


def test_the_hubs_parquet_layout_splits_by_file_name_and_reads_group_by_group(table_and_photos, tmp_path):
    table, files, captions = table_and_photos
    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    image_dataset(files[:4], captions[:4]).to_parquet(str(folder / "train-00000-of-00001.parquet"), batch_size=3)
    image_dataset(files[4:], captions[4:]).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    source = build_source(f"hf:{tmp_path / 'hub'}")
    assert sorted(source.splits()) == ["test", "train"]
    train = source.load("train")
    assert [i.payload for i in train.items["text"]] == captions[:4]
    assert {i.payload.group for i in train.items["image"]} == {0, 1}  # two row groups of 3 and 1 rows
    assert train.items["image"][3].payload.read_bytes() == files[3].read_bytes()
    assert np.array_equal(features(f"hf:{tmp_path / 'hub'}", "train", tmp_path / "a"),
                          features(f"pairs:{table}", "all", tmp_path / "b")[:4])


def test_paths_lists_of_captions_and_named_columns(table_and_photos, tmp_path):
    _, files, _ = table_and_photos
    several = [[f"first of {i}", f"second of {i}"] for i in range(6)]
    image_dataset(files, several, image="paths").rename_column("caption", "words").save_to_disk(str(tmp_path / "s"))
    data = build_source(f"hf:{tmp_path / 's'}#text=words").load("all")
    assert data.items["image"][0].payload == str(files[0])
    assert [i.id for i in data.items["text"][:2]] == ["0#0", "0#1"] and data.pairs[:2] == [("0", "0#0"), ("0", "0#1")]
    with pytest.raises(DataError, match=r"no text column \(columns: image, words\); name it with hf:.*#text=COLUMN"):
        build_source(f"hf:{tmp_path / 's'}").load("all")


def test_load_dataset_by_name_reads_what_datasets_built(table_and_photos, tmp_path, monkeypatch):
    _, files, captions = table_and_photos
    folder = tmp_path / "local-dataset" / "data"
    folder.mkdir(parents=True)
    image_dataset(files, captions).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    splits = named_dataset(str(tmp_path / "local-dataset"))  # the by-name path: load_dataset builds Arrow files
    assert list(splits) == ["train"] and splits["train"][0].kind == "arrow"
    with pytest.raises(DataError, match=r"hf:no-such-owner/no-such-dataset: .*could not load it by name"):
        build_source("hf:no-such-owner/no-such-dataset")


def test_rows_without_image_or_caption_and_bad_targets(table_and_photos, tmp_path):
    _, files, captions = table_and_photos
    captions = list(captions)
    captions[1] = ""
    image_dataset(files, captions).save_to_disk(str(tmp_path / "s"))
    with pytest.raises(DataError, match=r"data-00000-of-00001\.arrow row 1: no caption"):
        build_source(f"hf:{tmp_path / 's'}").load("all")
    data = build_source(f"hf:{tmp_path / 's'}", skip_bad=True).load("all")
    assert len(data.items["image"]) == 5 and [i for i, _ in data.skipped] == ["1"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a save_to_disk folder .* nor a folder of .parquet files"):
        build_source(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="unknown or empty option"):
        build_source(f"hf:{tmp_path / 's'}#colour=red")
