"""Data sources: the three Flickr8k layouts, pairs tables, Fashion-MNIST, and their error messages."""
from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentfuse.data import SOURCES, SplitData, build_source
from latentfuse.data.fashion_mnist import CAPTIONS, CLASS_NAMES
from latentfuse.errors import DataError
from conftest import SHARED
from helpers.tables import make_fashion  # noqa: F401

SHARED_FLICKR = SHARED / "flickr8k"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

IMAGES = ["1000_aa.jpg", "2000_bb.jpg", "3000_cc.jpg", "4000_dd.jpg"]
SPLITS = {"train": ["1000_aa.jpg", "2000_bb.jpg"], "val": ["3000_cc.jpg"], "test": ["4000_dd.jpg"]}
SPLIT_LISTS = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


# -- helpers: tiny datasets on disk ---------------------------------------------------------------


def jpeg(path: Path, shade: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 50, 200)).save(path, format="JPEG")
    return path


def caption(image: str, k: int) -> str:
    return f"caption {k} of {image}, with a comma"


def make_shared(root: Path, images: list[str] = IMAGES, splits: dict = SPLITS) -> Path:
    """The latentfuse layout: images/, captions.tsv, splits.json (one entry per line)."""
    for i, name in enumerate(images):
        jpeg(root / "images" / name, shade=10 * i)
    with open(root / "captions.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["image", "caption_index", "caption"])
        for name in images:
            for k in range(5):
                writer.writerow([name, k, caption(name, k)])
    (root / "splits.json").write_text(json.dumps(splits, indent=0))
    return root


def make_kaggle(root: Path, images: list[str] = IMAGES, lists: bool = False) -> Path:
    for name in images:
        jpeg(root / "Images" / name)
    with open(root / "captions.txt", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for name in images:
            for k in range(5):
                writer.writerow([name, caption(name, k)])
    if lists:
        write_split_lists(root)
    return root


def write_split_lists(root: Path, splits: dict = SPLITS) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for split, name in SPLIT_LISTS.items():
        (root / name).write_text("".join(f"{i}\n" for i in splits[split]))


def make_original(root: Path, text_dir: str = ".", image_dir: str = "Flicker8k_Dataset") -> Path:
    """The original distribution, including the official typo line for an image that does not exist."""
    for name in IMAGES:
        jpeg(root / image_dir / name)
    text = root / text_dir
    text.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}#{k}\t{caption(name, k)}" for name in IMAGES for k in range(5)]
    lines.insert(3, "2258277193_586949ec62.jpg.1#0\tA stray caption .")
    lines += [f"2258277193_586949ec62.jpg#{k}\tStray {k} ." for k in range(1, 5)]
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    write_split_lists(text)
    return root


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def check_flickr_split(data: SplitData, images: list[str]) -> None:
    assert [i.id for i in data.items["image"]] == images
    expected = [f"{image}#{k}" for image in images for k in range(5)]
    assert [t.id for t in data.items["text"]] == expected
    assert data.pairs == [(c.split("#")[0], c) for c in expected]
    texts = {t.id: t.payload for t in data.items["text"]}
    assert texts[f"{images[0]}#3"] == caption(images[0], 3)
    assert all(isinstance(i.payload, Path) and i.payload.is_file() for i in data.items["image"])
    assert data.skipped == []


# -- Flickr8k: the three layouts --------------------------------------------------------------------


def test_shared_layout(tmp_path):
    source = build_source(f"flickr8k:{make_shared(tmp_path / 'f8k')}")
    assert source.splits() == ["train", "val", "test"]
    assert source.spec == f"flickr8k:{(tmp_path / 'f8k').resolve()}"
    assert [s.name for s in source.sides] == ["image", "text"]
    for split, images in SPLITS.items():
        check_flickr_split(source.load(split), images)
    first = source.load("train").items["text"][0]
    assert first.origin == "captions.tsv:2"
    assert source.load("test").items["image"][0].origin == "images/4000_dd.jpg"


def test_shared_layout_reads_quoted_captions(tmp_path):
    root = make_shared(tmp_path)
    with open(root / "captions.tsv", "a", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t").writerow(["1000_aa.jpg", 5, 'A "quoted"\tcaption'])
    texts = build_source(f"flickr8k:{root}").load("train").items["text"]
    assert texts[5].id == "1000_aa.jpg#5" and texts[5].payload == 'A "quoted"\tcaption'


def test_kaggle_layout_with_split_lists(tmp_path):
    source = build_source(f"flickr8k:{make_kaggle(tmp_path, lists=True)}")
    for split, images in SPLITS.items():
        check_flickr_split(source.load(split), images)


def test_kaggle_layout_hashed_split_is_stable_and_documented(tmp_path):
    names = [f"{n:04d}_x.jpg" for n in range(40)]
    source = build_source(f"flickr8k:{make_kaggle(tmp_path, images=names)}")
    assert source.splits() == ["train", "val", "test"]
    got = {split: [i.id for i in source.load(split).items["image"]] for split in source.splits()}
    expected: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name in sorted(names):  # documented rule: sha256 of the file name, 75 / 12.5 / 12.5 %
        u = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
        expected["train" if u < 0.75 else "val" if u < 0.875 else "test"].append(name)
    assert got == expected
    assert sum(map(len, got.values())) == 40 and all(got.values())
    check_flickr_split(source.load("train"), got["train"])
    # an image's split does not depend on the others
    smaller = build_source(f"flickr8k:{make_kaggle(tmp_path / 'small', images=names[:10])}")
    kept = [i.id for i in smaller.load("train").items["image"]]
    assert kept == [n for n in got["train"] if n in names[:10]]


def test_kaggle_layout_tolerates_unquoted_commas(tmp_path):
    root = make_kaggle(tmp_path, lists=True)
    with open(root / "captions.txt", "a", encoding="utf-8") as f:
        f.write("4000_dd.jpg,a dog, running , fast\n")
    texts = build_source(f"flickr8k:{root}").load("test").items["text"]
    assert (texts[-1].id, texts[-1].payload) == ("4000_dd.jpg#5", "a dog, running , fast")


@pytest.mark.parametrize(
    "text_dir,image_dir", [(".", "Flicker8k_Dataset"), ("Flickr8k_text", "Flickr8k_Dataset")]
)
def test_original_layout_ignores_stray_token_lines(tmp_path, text_dir, image_dir):
    source = build_source(f"flickr8k:{make_original(tmp_path, text_dir, image_dir)}")
    assert source.splits() == ["train", "val", "test"]
    for split, images in SPLITS.items():
        check_flickr_split(source.load(split), images)
    token = "Flickr8k.token.txt" if text_dir == "." else f"{text_dir}/Flickr8k.token.txt"
    assert source.load("val").items["text"][0].origin == f"{token}:12"  # line 4 is the stray line


def test_original_layout_token_for_split_image_without_file_is_an_error(tmp_path):
    root = make_original(tmp_path)
    (root / "Flicker8k_Dataset" / "4000_dd.jpg").unlink()
    message = error_of(build_source(f"flickr8k:{root}").load, "test")
    assert "Flickr_8k.testImages.txt line 1" in message and "Flicker8k_Dataset/" in message


def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    message = error_of(build_source, f"flickr8k:{tmp_path}")
    looked_for = ("captions.tsv", "captions.txt", "Flickr8k.token.txt", "Flicker8k_Dataset", "readme.txt")
    assert all(name in message for name in looked_for)
    assert "not found" in error_of(build_source, f"flickr8k:{tmp_path / 'nope'}")


def test_unknown_split_lists_available(tmp_path):
    message = error_of(build_source(f"flickr8k:{make_shared(tmp_path)}").load, "dev")
    assert "'dev'" in message and "train, val, test" in message


# -- Flickr8k: the real shared copy -----------------------------------------------------------------


def test_shared_flickr8k_copy():
    if not (SHARED_FLICKR / "captions.tsv").is_file():
        pytest.skip(f"no shared Flickr8k at {SHARED_FLICKR}")
    source = build_source(f"flickr8k:{SHARED_FLICKR}")
    test = source.load("test")
    assert len(test.items["image"]) == 1000 and len(test.items["text"]) == 5000 and len(test.pairs) == 5000
    assert len(source.load("train").items["image"]) == 6000
    assert test.items["text"][0].id == f"{test.items['image'][0].id}#0"


# -- Flickr8k: bad input ----------------------------------------------------------------------------


def test_split_naming_image_without_file(tmp_path):
    root = make_shared(tmp_path)
    (root / "images" / "4000_dd.jpg").unlink()
    message = error_of(build_source(f"flickr8k:{root}").load, "test")
    line = line_of(root / "splits.json", "4000_dd.jpg")
    assert f"splits.json line {line}: split 'test' names '4000_dd.jpg'" in message
    assert "not in images/" in message


def test_split_naming_image_without_captions(tmp_path):
    root = make_shared(tmp_path, splits={**SPLITS, "test": ["4000_dd.jpg", "9999_zz.jpg"]})
    jpeg(root / "images" / "9999_zz.jpg")
    message = error_of(build_source(f"flickr8k:{root}").load, "test")
    line = line_of(root / "splits.json", "9999_zz.jpg")
    assert f"splits.json line {line}" in message and "'9999_zz.jpg'" in message and "no captions" in message


def test_split_list_naming_missing_image(tmp_path):
    root = make_kaggle(tmp_path, lists=True)
    (root / "Flickr_8k.devImages.txt").write_text("3000_cc.jpg\n\nnot_there.jpg\n")
    message = error_of(build_source(f"flickr8k:{root}").load, "val")
    assert "Flickr_8k.devImages.txt line 3" in message and "'not_there.jpg'" in message


def test_empty_caption_names_file_and_line(tmp_path):
    root = make_shared(tmp_path)
    rewrite(root / "captions.tsv", caption("2000_bb.jpg", 1), " ")
    line = line_of(root / "captions.tsv", "2000_bb.jpg\t1")
    message = error_of(build_source(f"flickr8k:{root}").load, "train")
    assert message == f"captions.tsv line {line}: empty caption for '2000_bb.jpg'"


def test_empty_caption_in_kaggle_and_original_files(tmp_path):
    kaggle = make_kaggle(tmp_path / "k")
    rewrite(kaggle / "captions.txt", f'"{caption("3000_cc.jpg", 0)}"', '""')
    line = line_of(kaggle / "captions.txt", "3000_cc.jpg,")
    message = error_of(build_source(f"flickr8k:{kaggle}").load, "val")
    assert f"captions.txt line {line}: empty caption" in message
    original = make_original(tmp_path / "o")
    rewrite(original / "Flickr8k.token.txt", caption("1000_aa.jpg", 2), "")
    line = line_of(original / "Flickr8k.token.txt", "1000_aa.jpg#2")
    message = error_of(build_source(f"flickr8k:{original}").load, "train")
    assert f"Flickr8k.token.txt line {line}: empty caption for '1000_aa.jpg'" in message


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("2000_bb.jpg\t3\t", "2000_bb.jpg\t3\tx\t", "4 tab-separated fields, expected 3"),
        ("2000_bb.jpg\t3\t", "2000_bb.jpg\tthree\t", "caption index 'three' is not a non-negative integer"),
        ("2000_bb.jpg\t3\t", "\t3\t", "empty image file name"),
        ("2000_bb.jpg\t4\t", "2000_bb.jpg\t3\t", "duplicate caption 2000_bb.jpg#3"),
    ],
)
def test_malformed_caption_lines(tmp_path, old, new, expected):
    root = make_shared(tmp_path)
    line = line_of(root / "captions.tsv", old)
    rewrite(root / "captions.tsv", old, new)
    message = error_of(build_source(f"flickr8k:{root}").load, "train")
    assert message.startswith(f"captions.tsv line {line}: ") and expected in message


def test_missing_header_column(tmp_path):
    root = make_shared(tmp_path)
    rewrite(root / "captions.tsv", "image\tcaption_index\tcaption", "image\tindex\tcaption")
    message = error_of(build_source(f"flickr8k:{root}").load, "train")
    assert message.startswith("captions.tsv line 1: missing column 'caption_index'")
    kaggle = make_kaggle(tmp_path / "k")
    rewrite(kaggle / "captions.txt", "image,caption", "file,caption")
    message = error_of(build_source(f"flickr8k:{kaggle}").load, "train")
    assert "captions.txt line 1: missing column 'image'" in message


def test_malformed_token_line(tmp_path):
    root = make_original(tmp_path)
    rewrite(root / "Flickr8k.token.txt", "2000_bb.jpg#1\t", "2000_bb.jpg#1 ")
    line = line_of(root / "Flickr8k.token.txt", "2000_bb.jpg#1 ")
    message = error_of(build_source(f"flickr8k:{root}").load, "train")
    assert message.startswith(f"Flickr8k.token.txt line {line}: expected '<image>#<k><TAB><caption>'")


def test_bad_splits_json(tmp_path):
    root = make_shared(tmp_path)
    (root / "splits.json").write_text('{"train": [\n"1000_aa.jpg",\n]}')
    assert error_of(build_source(f"flickr8k:{root}").splits).startswith("splits.json line 3: bad JSON")
    twice = {"train": ["1000_aa.jpg"], "test": ["1000_aa.jpg"]}
    (root / "splits.json").write_text(json.dumps(twice, indent=0))
    message = error_of(build_source(f"flickr8k:{root}").splits)
    assert "splits.json line 6: split 'test' names '1000_aa.jpg'" in message
    assert "already in split 'train'" in message


def test_skip_bad_records_dropped_captions_and_images(tmp_path):
    root = make_shared(tmp_path)
    rewrite(root / "captions.tsv", caption("1000_aa.jpg", 2), "")
    (root / "images" / "2000_bb.jpg").unlink()
    data = build_source(f"flickr8k:{root}", skip_bad=True).load("train")
    assert [i.id for i in data.items["image"]] == ["1000_aa.jpg"]
    assert [t.id for t in data.items["text"]] == [f"1000_aa.jpg#{k}" for k in (0, 1, 3, 4)]
    assert ("1000_aa.jpg", "1000_aa.jpg#2") not in data.pairs and len(data.pairs) == 4
    assert [s[0] for s in data.skipped] == ["1000_aa.jpg#2", "2000_bb.jpg"]
    assert "captions.tsv line 4: empty caption" in data.skipped[0][1]
    assert "not in images/" in data.skipped[1][1]
    assert build_source(f"flickr8k:{root}", skip_bad=True).load("test").skipped == []  # per split


def test_skip_bad_does_not_hide_structural_errors(tmp_path):
    root = make_shared(tmp_path)
    rewrite(root / "captions.tsv", "image\tcaption_index", "img\tcaption_index")
    assert "missing column 'image'" in error_of(build_source(f"flickr8k:{root}", skip_bad=True).load, "train")


def test_fingerprint_follows_content(tmp_path):
    root = make_shared(tmp_path)
    before = build_source(f"flickr8k:{root}").fingerprint
    assert build_source(f"flickr8k:{root}").fingerprint == before
    rewrite(root / "captions.tsv", caption("3000_cc.jpg", 4), "an edited caption")
    edited = build_source(f"flickr8k:{root}").fingerprint
    assert edited != before
    jpeg(root / "images" / "1000_aa.jpg").write_bytes(b"x" * 10)  # same name, other size
    assert build_source(f"flickr8k:{root}").fingerprint != edited


# -- pairs ----------------------------------------------------------------------------------------

PAIR_ROWS = [
    {"image": "imgs/a.jpg", "text": "a red square", "split": "train", "label": "red"},
    {"image": "./imgs//a.jpg", "text": "red, again", "split": "train", "label": "red"},
    {"image": "imgs/b.jpg", "text": 'a "blue" one', "split": "test", "label": "blue"},
    {"image": "imgs/c.jpg", "text": "green", "split": "train", "label": ""},
]


def write_table(path: Path, rows: list[dict]) -> Path:
    """The same rows as .csv/.tsv/.jsonl/.parquet (an empty cell is an empty string in every format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    if path.suffix in (".csv", ".tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="," if path.suffix == ".csv" else "\t")
            writer.writerow(columns)
            writer.writerows([[r[c] for c in columns] for r in rows])
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({c: [r[c] for r in rows] for c in columns}), path)
    return path


def without_origins(data: SplitData) -> tuple:
    items = {side: [(i.id, i.payload) for i in items] for side, items in data.items.items()}
    return data.split, data.sides, items, data.pairs, data.labels, data.skipped


def make_pair_images(root: Path) -> None:
    for name in ("a", "b", "c"):
        jpeg(root / "imgs" / f"{name}.jpg")


def test_pairs_formats_agree_and_paths_resolve_against_the_file(tmp_path):
    make_pair_images(tmp_path / "data")
    loaded = {}
    for ext in (".csv", ".tsv", ".jsonl", ".parquet"):
        source = build_source(f"pairs:{write_table(tmp_path / 'data' / f'pairs{ext}', PAIR_ROWS)}")
        assert source.splits() == ["train", "test"]
        loaded[ext] = {split: without_origins(source.load(split)) for split in source.splits()}
    assert loaded[".csv"] == loaded[".tsv"] == loaded[".jsonl"] == loaded[".parquet"]
    train = build_source(f"pairs:{tmp_path / 'data' / 'pairs.csv'}").load("train")
    assert [i.id for i in train.items["image"]] == ["imgs/a.jpg", "imgs/c.jpg"]
    assert train.items["image"][0].payload == tmp_path / "data" / "imgs" / "a.jpg"
    assert [t.id for t in train.items["text"]] == ["row1", "row2", "row4"]
    assert train.pairs == [("imgs/a.jpg", "row1"), ("imgs/a.jpg", "row2"), ("imgs/c.jpg", "row4")]
    assert train.labels == {"imgs/a.jpg": "red", "row1": "red", "row2": "red"}
    assert train.items["text"][0].origin == "pairs.csv:2"


def test_pairs_relative_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    jpeg(tmp_path / "imgs" / "a.jpg")
    table = write_table(tmp_path / "tables" / "p.csv", [{"image": "../imgs/a.jpg", "text": "x"}])
    monkeypatch.chdir(tmp_path / "tables")
    source = build_source("pairs:p.csv")
    assert source.spec == f"pairs:{table.resolve()}" and source.splits() == ["all"]
    monkeypatch.chdir("/")
    item = source.load("all").items["image"][0]
    assert item.id == "../imgs/a.jpg" and item.payload == tmp_path / "imgs" / "a.jpg"


def test_pairs_text_text_with_ids(tmp_path):
    rows = [{"id": "q1", "text_a": "hello", "text_b": "hi", "label": "same"},
            {"id": "q2", "text_a": "cat", "text_b": "dog", "label": "different"}]  # fmt: skip
    data = build_source(f"pairs:{write_table(tmp_path / 't.jsonl', rows)}").load("all")
    assert [s.name for s in data.sides] == ["text_a", "text_b"]
    assert {s.modality for s in data.sides} == {"text"}
    assert [(i.id, i.payload) for i in data.items["text_b"]] == [("q1", "hi"), ("q2", "dog")]
    assert data.pairs == [("q1", "q1"), ("q2", "q2")] and data.labels == {"q1": "same", "q2": "different"}


def test_pairs_missing_column(tmp_path):
    table = write_table(tmp_path / "pairs.csv", [{"image": "a.jpg", "words": "x"}])
    assert error_of(build_source, f"pairs:{table}") == (
        "pairs.csv: missing column 'text' (or caption, title, sentence, captions); found columns: image, words; "
        "expected image+text or text_a+text_b, or say which column is which with --columns ROLE=COLUMN "
        "(e.g. --columns image=photo,text=words)"
    )


def test_pairs_reads_usual_column_names_and_an_explicit_mapping(tmp_path):
    make_pair_images(tmp_path)
    openclip = write_table(tmp_path / "oc.csv", [{"filepath": "imgs/a.jpg", "title": "a cat"}])
    data = build_source(f"pairs:{openclip}").load("all")
    assert [i.id for i in data.items["image"]] == ["imgs/a.jpg"] and data.items["text"][0].payload == "a cat"
    mapped = write_table(tmp_path / "m.csv", [{"photo": "imgs/a.jpg", "text": "ignored", "words": "a dog"}])
    data = build_source(f"pairs:{mapped}#image=photo#text=words").load("all")
    assert data.items["text"][0].payload == "a dog"  # the mapped column, not the one named text
    both = write_table(tmp_path / "b.csv", [{"filepath": "imgs/a.jpg", "file_name": "imgs/a.jpg", "text": "x"}])
    assert "columns 'file_name' and 'filepath' could each be the image; say which, e.g. --columns image=file_name" \
        in error_of(build_source, f"pairs:{both}")
    assert "no column 'titl' (mapped to 'text'); found columns: filepath, title" in \
        error_of(build_source, f"pairs:{openclip}#text=titl")
    assert "unknown role 'txt'" in error_of(build_source, f"pairs:{openclip}#txt=title")


def test_pairs_bad_rows_name_file_and_row(tmp_path):
    make_pair_images(tmp_path)
    rows = PAIR_ROWS + [{"image": "imgs/a.jpg", "text": " ", "split": "train", "label": ""}]
    message = error_of(build_source(f"pairs:{write_table(tmp_path / 'pairs.csv', rows)}").load, "train")
    assert message.startswith("pairs.csv row 5 (line 6): empty 'text'")
    rows = PAIR_ROWS + [{"image": "imgs/zzz.jpg", "text": "y", "split": "train", "label": ""}]
    message = error_of(build_source(f"pairs:{write_table(tmp_path / 'pairs.jsonl', rows)}").load, "train")
    assert message.startswith("pairs.jsonl row 5 (line 5): image file 'imgs/zzz.jpg' not found")
    (tmp_path / "bad.jsonl").write_text('{"image": "a.jpg", "text": "x"}\n\n{"image": "b.jpg", text}\n')
    assert error_of(build_source, f"pairs:{tmp_path / 'bad.jsonl'}").startswith("bad.jsonl line 3: bad JSON")
    (tmp_path / "short.csv").write_text("image,text\nimgs/a.jpg,x\nimgs/b.jpg\n")
    message = error_of(build_source, f"pairs:{tmp_path / 'short.csv'}")
    assert message.startswith("short.csv row 2 (line 3): 1 fields")
    (tmp_path / "dup.csv").write_text("id,text_a,text_b\nq,a,b\nq,c,d\n")
    message = error_of(build_source, f"pairs:{tmp_path / 'dup.csv'}")
    assert message == "dup.csv row 2 (line 3): duplicate id 'q' (first used at row 1)"
    (tmp_path / "p.txt").write_text("x")
    assert "unknown table format '.txt'" in error_of(build_source, f"pairs:{tmp_path / 'p.txt'}")


def test_pairs_conflicting_label(tmp_path):
    make_pair_images(tmp_path)
    rows = PAIR_ROWS + [{"image": "imgs/a.jpg", "text": "y", "split": "train", "label": "blue"}]
    message = error_of(build_source(f"pairs:{write_table(tmp_path / 'pairs.csv', rows)}").load, "train")
    assert message == (
        "pairs.csv row 5 (line 6): label 'blue' for image 'imgs/a.jpg' conflicts with 'red' from row 1"
    )


def test_pairs_skip_bad(tmp_path):
    make_pair_images(tmp_path)
    (tmp_path / "imgs" / "a.jpg").unlink()
    rows = PAIR_ROWS + [{"image": "imgs/c.jpg", "text": "", "split": "train", "label": ""}]
    data = build_source(f"pairs:{write_table(tmp_path / 'pairs.csv', rows)}", skip_bad=True).load("train")
    assert [i.id for i in data.items["image"]] == ["imgs/c.jpg"]
    assert data.pairs == [("imgs/c.jpg", "row4")] and data.labels == {}
    assert [s[0] for s in data.skipped] == ["imgs/a.jpg", "row5"]
    assert data.skipped[0][1].startswith("pairs.csv row 1 (line 2): image file 'imgs/a.jpg' not found")
    assert data.skipped[1][1].startswith("pairs.csv row 5 (line 6): empty 'text'")


def test_pairs_parquet_without_pyarrow(tmp_path, monkeypatch):
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert "needs pyarrow" in error_of(build_source, f"pairs:{tmp_path / 'p.parquet'}")


def test_pairs_fingerprint_follows_content(tmp_path):
    make_pair_images(tmp_path)
    table = write_table(tmp_path / "pairs.csv", PAIR_ROWS)
    before = build_source(f"pairs:{table}").fingerprint
    rewrite(table, "green", "GREEN")
    assert build_source(f"pairs:{table}").fingerprint != before


# -- Fashion-MNIST --------------------------------------------------------------------------------






def test_fashion_mnist_real_test_split():
    if not FASHION_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    source = build_source("fashion-mnist")
    assert source.spec == "fashion-mnist" and source.splits() == ["train", "val", "test"]
    data = source.load("test")
    images, texts = data.items["image"], data.items["text"]
    assert len(images) == 10000 and len(texts) == 10 and len(data.pairs) == 10000
    assert images[42].id == "test/00042" and images[42].payload.shape == (28, 28)
    assert images[42].payload.dtype == np.uint8
    assert [t.payload for t in texts] == list(CAPTIONS) and texts[0].payload == "a photo of a t-shirt."
    caption_class = {t.id: CLASS_NAMES[k] for k, t in enumerate(texts)}
    assert all(data.labels[image] == caption_class[text] for image, text in data.pairs)
    assert data.labels[images[0].id] == "Ankle boot"  # the first t10k image is an ankle boot


def test_fashion_mnist_small_directory(tmp_path):
    source = build_source(f"fashion-mnist:{make_fashion(tmp_path)}")
    assert source.spec == f"fashion-mnist:{tmp_path.resolve()}"
    train, val = source.load("train"), source.load("val")
    assert len(train.items["image"]) == 10  # 12 - 12 // 6
    assert [i.id for i in val.items["image"]] == ["val/00000", "val/00001"]
    assert val.pairs == [("val/00000", "class/0"), ("val/00001", "class/1")]
    assert val.items["image"][0].origin == "train-images-idx3-ubyte.gz[10]"
    assert val.labels["val/00001"] == "Trouser"


def test_fashion_mnist_truncated_file(tmp_path):
    source = build_source(f"fashion-mnist:{make_fashion(tmp_path, cut=100)}")
    message = error_of(source.load, "test")
    assert message.startswith("t10k-images-idx3-ubyte.gz:") and "truncated" in message
    raw = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    message = error_of(build_source(f"fashion-mnist:{tmp_path}").load, "train")
    assert message.startswith("train-images-idx3-ubyte.gz: cannot decompress")


def test_fashion_mnist_missing_directory(tmp_path):
    message = error_of(build_source, f"fashion-mnist:{tmp_path / 'none'}")
    assert "apt-get install dataset-fashion-mnist" in message and "fashion-mnist:DIR" in message


def test_registry_knows_the_builtin_sources():
    with pytest.raises(KeyError) as info:
        build_source("flickr9k:somewhere")
    assert "Did you mean 'flickr8k'?" in str(info.value)
    assert {"flickr8k", "pairs", "fashion-mnist"} <= set(SOURCES.names())
