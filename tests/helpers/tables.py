"""Data files the tests write: pairs tables, Flickr8k-shaped folders, image folders, Fashion-MNIST."""
from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import fakes  # noqa: F401  (registers the fake-text encoder)

COLOURS = {"red": (230, 10, 10), "green": (10, 230, 10), "blue": (10, 10, 230)}

VOCAB = [f"w{i}" for i in range(60)]


def cipher_table(path, n_train=800, n_val=150, n_test=200, seed=0):
    """text_b is a word-for-word cipher of text_a: alignable, but only by learning the mapping."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text_a", "text_b", "split"])
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            for _ in range(n):
                words = rng.sample(VOCAB, 4)
                writer.writerow([" ".join(words), " ".join("z" + w[1:] for w in words), split])
    return path


def write_config(tmp_path, table, **train):
    train = {"epochs": 8, "batch_size": 128, "threads": 1, **train}
    config = {
        "data": {"source": f"pairs:{table}"},
        "encoders": {"text_a": "fake-text:64", "text_b": "fake-text:64"},
        "store": {"root": str(tmp_path / "store")},
        "method": {"name": "fusemix", "options": {"dim": 32, "hidden": 128, "n_blocks": 1, "dropout": 0.1}},
        "train": train,
        "baselines": ["procrustes"],
        "out": str(tmp_path / "model"),
    }
    path = tmp_path / "run.yaml"
    import yaml
    path.write_text(yaml.safe_dump(config))
    return path


def colour_folder(root: Path, layout: dict[str, dict[str, list[str]]]) -> Path:
    """``{split: {class: [colour of each image]}}``; split "" means no split level."""
    for split, classes in layout.items():
        for name, colours in classes.items():
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, colour in enumerate(colours):
                Image.new("RGB", (8, 8), COLOURS[colour]).save(folder / f"{k:03d}.png")
    return root


def write_pairs(path: Path, rows: list[tuple[str, str, object, str]], target: str) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["sentence1", "sentence2", target, "split"])
        writer.writerows(rows)
    return path


def write_flickr8k(root, captions_by_split):
    (root / "images").mkdir(parents=True)
    rows, splits = ["image\tcaption_index\tcaption"], {}
    for split, images in captions_by_split.items():
        splits[split] = list(images)
        for image, captions in images.items():
            (root / "images" / image).write_bytes(image.encode())
            rows += [f"{image}\t{k}\t{caption}" for k, caption in enumerate(captions)]
    (root / "captions.tsv").write_text("\n".join(rows) + "\n")
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def make_fashion(root: Path, n_train: int = 12, n_test: int = 5, cut: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 0x803, cut)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10, 0x801)
    return root


def write_idx(path: Path, array: np.ndarray, magic: int, cut: int = 0) -> None:
    raw = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw[: len(raw) - cut])
