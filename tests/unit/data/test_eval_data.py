"""The evaluation data sources: imagefolder layouts and errors, sentence/word-pair tables and errors."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from latentfuse.data import build_source
from latentfuse.data.sentence_pairs import targets
from latentfuse.errors import DataError


def _png(path: Path, colour=(200, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)
    return path


# ---------------------------------------------------------------- imagefolder

def test_imagefolder_with_split_folders(tmp_path):
    for split in ("train", "test"):
        _png(tmp_path / split / "golden_retriever" / "a.png")
        _png(tmp_path / split / "tabby" / "nested" / "b.JPG")
    (tmp_path / "train" / "tabby" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "tabby" / ".hidden.png").write_bytes(b"")
    _png(tmp_path / "train" / "cat3" / "c.png")  # a class seen only in train is still a caption in test
    source = build_source(f"imagefolder:{tmp_path}")
    assert source.splits() == ["train", "test"]
    train = source.load("train")
    assert [i.id for i in train.items["image"]] == ["train/cat3/c.png", "train/golden_retriever/a.png",
                                                     "train/tabby/nested/b.JPG"]
    assert [t.payload for t in train.items["text"]] == ["a photo of a cat3.", "a photo of a golden retriever.",
                                                         "a photo of a tabby."]
    assert train.labels["train/golden_retriever/a.png"] == "golden_retriever"
    assert ("train/tabby/nested/b.JPG", "class/tabby") in train.pairs
    test = source.load("test")
    assert len(test.items["text"]) == 3 and len(test.items["image"]) == 2
    fp = source.fingerprint
    _png(tmp_path / "test" / "tabby" / "new.png")
    assert build_source(f"imagefolder:{tmp_path}").fingerprint != fp


def test_imagefolder_without_split_folders_is_split_all(tmp_path):
    _png(tmp_path / "cat" / "1.png")
    _png(tmp_path / "dog" / "1.png")
    source = build_source(f"imagefolder:{tmp_path}")
    assert source.splits() == ["all"] and len(source.load("all").pairs) == 2


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "has no sub-folders"),
    (lambda root: (_png(root / "train" / "a" / "1.png"), _png(root / "cat" / "1.png")), "mixes split folders"),
    (lambda root: ((root / "test").mkdir(), _png(root / "train" / "a" / "1.png")), r"split folder .*test has no class"),
])
def test_imagefolder_layout_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        build_source(f"imagefolder:{tmp_path}")


def test_imagefolder_empty_class_folder_is_named_or_skipped(tmp_path):
    _png(tmp_path / "cat" / "1.png")
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*dog has no image files"):
        build_source(f"imagefolder:{tmp_path}").load("all")
    data = build_source(f"imagefolder:{tmp_path}", skip_bad=True).load("all")
    assert len(data.items["image"]) == 1 and data.skipped[0][0] == "class/dog"


def test_imagefolder_with_no_images_at_all(tmp_path):
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="has no images"):
        build_source(f"imagefolder:{tmp_path}", skip_bad=True).load("all")
    with pytest.raises(DataError, match="not found"):
        build_source(f"imagefolder:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------- sentence-pair tables

def test_sts_table_rows_targets_and_splits(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sentence1\tsentence2\tscore\tsplit\nA cat.\tA cat sits.\t4.5\ttrain\n"
                    "A dog.\tA car.\t0.25\ttest\nSky.\tBlue sky.\t3\ttest\n")
    source = build_source(f"sts:{path}")
    assert source.splits() == ["train", "test"]
    test = source.load("test")
    assert test.pairs == [("row2", "row2"), ("row3", "row3")]
    assert [i.payload for i in test.items["text_b"]] == ["A car.", "Blue sky."]
    assert targets(test) == {"row2": 0.25, "row3": 3.0}
    assert test.items["text_a"][0].origin == "s.tsv:3"


@pytest.mark.parametrize("body, message", [
    ("sentence1\tsentence2\tsplit\na\tb\ttest\n", r"s\.tsv: missing column\(s\) score"),
    ("sentence1\tsentence2\tscore\na\tb\thigh\n", r"s\.tsv row 1 \(line 2\): 'score' is 'high'; expected a number"),
    ("sentence1\tsentence2\tscore\na\t\t1\n", r"s\.tsv row 1 \(line 2\): empty 'sentence2'"),
    ("sentence1\tsentence2\tscore\na\tb\tnan\n", "expected a number"),
])
def test_sts_table_errors_name_file_row_and_field(tmp_path, body, message):
    path = tmp_path / "s.tsv"
    path.write_text(body)
    with pytest.raises(DataError, match=message):
        source = build_source(f"sts:{path}")
        source.load(source.splits()[0])


def test_pair_label_table_checks_labels_and_can_skip(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("sentence1,sentence2,label\na,b,1\nc,d,yes\ne,f,0\n")
    with pytest.raises(DataError, match=r"p\.csv row 2 \(line 3\): 'label' is 'yes'; expected 0 or 1"):
        build_source(f"pair-labels:{path}").load("all")
    data = build_source(f"pair-labels:{path}", skip_bad=True).load("all")
    assert targets(data) == {"row1": 1.0, "row3": 0.0} and data.skipped[0][0] == "row2"


def test_word_similarity_files(tmp_path):
    path = tmp_path / "ws.tsv"
    path.write_text("# a comment\n# Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\n\ntiger\tcat\t7.35\n")
    data = build_source(f"wordsim353:{path}").load("all")
    assert [(a.payload, b.payload) for a, b in zip(data.items["text_a"], data.items["text_b"])] == [
        ("love", "sex"), ("tiger", "cat")]
    assert targets(data) == {"row1": 6.77, "row2": 7.35} and data.items["text_a"][1].origin == "ws.tsv:5"
    path.write_text("love sex 6.77\n")
    with pytest.raises(DataError, match=r"ws\.tsv line 1: 1 tab-separated field"):
        build_source(f"wordsim353:{path}").load("all")


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim not installed")
def test_gensim_word_similarity_sets():
    wordsim = build_source("wordsim353")
    simlex = build_source("simlex999")
    assert wordsim.spec == "wordsim353" and len(wordsim.load("all").pairs) == 353
    assert len(simlex.load("all").pairs) == 999


def test_shared_set_defaults_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"shared/data/sts-b/stsb\.tsv.*pass sts-b:DIR or sts:FILE"):
        build_source("sts-b")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mrpc.tsv").write_text("sentence1\tsentence2\tlabel\tsplit\na\tb\t1\ttrain\nc\td\t0\ttest\n")
    assert build_source(f"mrpc:{folder}").splits() == ["train", "test"]
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    (tmp_path / "shared" / "data" / "mrpc").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "mrpc" / "mrpc.tsv").write_text((folder / "mrpc.tsv").read_text())
    assert build_source("mrpc").path == (tmp_path / "shared" / "data" / "mrpc" / "mrpc.tsv").resolve()
