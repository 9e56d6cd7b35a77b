"""The newcomer of issue 25, played with real photos and the packaged encoders: 60 Flickr8k photos and a CSV of
their captions without a split column train the first time; editing one caption and training again encodes
no image; indexing the same photos as a folder encodes no image; open_clip's ``filepath,title`` CSV and Hugging
Face imagefolder's ``metadata.csv`` train too. Encoder work is counted at the store's one encode call."""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import pytest
from click.testing import CliRunner

from latentfuse.cli import app
from latentfuse.store import extract

N_PHOTOS = 60
ENCODERS = ["-e", "image=efficientnet-lite0", "-e", "text=minilm-l6"]
QUICK = ["--epochs", "3", "--set", "train.batch_size=32", "--set", "method.options={dim: 32, hidden: 64}"]


@pytest.fixture
def encoded(monkeypatch) -> Counter:
    """Items encoded so far, by modality."""
    counts: Counter = Counter()
    real = extract.encode_items

    def counting(encoder, items, *args, **kwargs):
        counts[encoder.modality] += len(items)
        return real(encoder, items, *args, **kwargs)

    monkeypatch.setattr(extract, "encode_items", counting)
    return counts


@pytest.fixture
def photos(flickr8k_dir, tmp_path):
    """The newcomer's folder: 60 photos and captions.csv (image,text; two captions each; no split column)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    captions: dict[str, list[str]] = {}
    with open(flickr8k_dir / "captions.tsv", newline="") as handle:
        for image, _, caption in list(csv.reader(handle, delimiter="\t"))[1:]:
            captions.setdefault(image, []).append(caption)
    names = sorted(json.loads((flickr8k_dir / "splits.json").read_text())["test"])[:N_PHOTOS]
    rows = []
    for name in names:
        shutil.copy(flickr8k_dir / "images" / name, folder / name)
        rows += [(name, caption) for caption in captions[name][:2]]
    return folder, rows


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(*args):
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_own_csv_trains_first_time_and_a_photo_is_encoded_once(photos, tmp_path, encoded):
    folder, rows = photos
    table = write_csv(folder / "captions.csv", ["image", "text"], rows)
    store = ["--store", str(tmp_path / "store")]
    run("train", "--data", f"pairs:{table}", *ENCODERS, *QUICK, *store, "--out", str(tmp_path / "model"))
    (report,) = json.loads((tmp_path / "model" / "report.json").read_text())
    assert report["split"] == "test" and 0 < report["n_images"] < N_PHOTOS  # held-out photos only
    assert encoded["image"] == N_PHOTOS and encoded["text"] == len({text for _, text in rows})
    card = (tmp_path / "model" / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card and "license: apache-2.0" in card
    assert "- epochs: 3" in card and "held-out cut by image: train/val/test 80/10/10 %, seed 0" in card
    assert "data: `pairs:captions.csv`" in card and str(tmp_path) not in card

    run("eval", "-m", str(tmp_path / "model"), "--data", f"pairs:{table}", *store, "--json", str(tmp_path / "e.json"))
    evaluated = json.loads((tmp_path / "e.json").read_text())
    assert evaluated["split"] == "test" and evaluated["n_images"] == report["n_images"]  # the same held-out photos
    assert evaluated["metrics"] == report["metrics"] and encoded["image"] == N_PHOTOS

    run("index", "-m", str(tmp_path / "model"), "--data", f"pairs:{table}", "--split", "test", *store,
        "--out", str(tmp_path / "test-ix"))
    from latentfuse.index import open_index

    assert len(open_index(tmp_path / "test-ix")) == report["n_images"]  # the held-out photos the report scored, no training photo

    rows[5] = (rows[5][0], "a different caption the user typed")  # edit one caption, train again
    write_csv(table, ["image", "text"], rows)
    encoded.clear()
    run("train", "--data", f"pairs:{table}", *ENCODERS, *QUICK, *store, "--out", str(tmp_path / "model2"))
    assert encoded == {"text": 1}, "only the edited caption is new"

    encoded.clear()
    run("index", "-m", str(tmp_path / "model"), "--data", f"images:{folder}", *store, "--out", str(tmp_path / "ix"))
    assert encoded == {}, "the folder's photos are the table's photos: nothing to encode"
    shown = run("cache", *store).output
    assert "efficientnet-lite0" in shown and f"{N_PHOTOS:>9}" in shown


def test_open_clip_and_imagefolder_tables_train(photos, tmp_path):
    folder, rows = photos
    store = ["--store", str(tmp_path / "store")]
    write_csv(folder / "metadata.csv", ["file_name", "text"], rows)  # Hugging Face imagefolder
    run("train", "--data", f"pairs:{folder}", *ENCODERS, *QUICK, *store, "--out", str(tmp_path / "hf"))
    openclip = write_csv(tmp_path / "train.csv", ["filepath", "title"],
                         [(str(folder / name), text) for name, text in rows])
    run("train", "--data", f"pairs:{openclip}", *ENCODERS, *QUICK, *store, "--out", str(tmp_path / "oc"))
    mapped = write_csv(tmp_path / "mine.csv", ["photo", "words"], [(str(folder / n), t) for n, t in rows])
    run("train", "--data", f"pairs:{mapped}", "--columns", "image=photo,text=words", *ENCODERS, *QUICK, *store,
        "--out", str(tmp_path / "mine"))
    for name in ("hf", "oc", "mine"):
        (report,) = json.loads((tmp_path / name / "report.json").read_text())
        assert report["split"] == "test" and report["n_images"] > 0
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["trained_on"] == \
        "pairs:mine.csv#image=photo#text=words"
